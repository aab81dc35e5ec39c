"""One module per `pia` task; each exposes `main(argv) -> int`."""
