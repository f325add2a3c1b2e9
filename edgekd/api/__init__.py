"""The steps users run: distill, export, quantize, bench, compare, report, size, pipeline."""
