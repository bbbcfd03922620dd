"""amoCRM webhook deliveries: parsing the raw body into events."""
