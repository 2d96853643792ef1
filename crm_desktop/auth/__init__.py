"""Login, tokens and credentials in the OS keyring."""
