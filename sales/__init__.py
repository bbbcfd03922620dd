"""Sales: won deals from amoCRM, attributed to the leads and campaigns that brought them."""
