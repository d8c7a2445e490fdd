"""dxLink market-data client (see docs/README-dxlink.md)."""
