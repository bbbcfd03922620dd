"""amoCRM URLs: OAuth callback and the webhook receiver."""

urlpatterns: list = []
