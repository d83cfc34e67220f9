"""Security: passwords, tokens, rate limits, origins."""
