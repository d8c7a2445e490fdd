"""Local servers that speak the tastytrade APIs (REST, dxLink) for tests and offline work."""
