"""amoCRM / Kommo connection: accounts, tokens, API client, OAuth, webhooks."""
