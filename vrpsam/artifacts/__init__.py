"""What runs leave on disk and read back: atomic writes, training checkpoints (with the
architecture check), exports, and the record of the frozen weight files."""
