"""nearpos runtime: serves PyTorch work to the TypeScript API over ZeroMQ."""
