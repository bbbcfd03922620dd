"""Lead intake URLs."""

urlpatterns: list = []
