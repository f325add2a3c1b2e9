"""What runs where the model is deployed: sessions, export, quantization, measurement, EPs, remote devices."""
