"""edgekd: distil a large face-recognition network into a small int8 CNN for edge devices."""

__version__ = "0.1.0"
