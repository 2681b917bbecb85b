"""fibbench: the driver behind make bench (bench/run). See bench/README.md."""
