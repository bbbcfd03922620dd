"""The project's URLs plus views that exist only for the foundation tests."""

import logging

from django.http import JsonResponse
from django.urls import path
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import urlpatterns as project_urlpatterns

logger = logging.getLogger("tests.foundation.views")


def log_something(request):
    logger.warning(
        "lead accepted",
        extra={"lead_id": 7, "client_secret": "s3cr3t-value", "headers": {"Authorization": "Bearer tok-value"}},
    )
    return JsonResponse({"ok": True})


class ContactInput(serializers.Serializer):
    phone = serializers.CharField()


class SampleInput(serializers.Serializer):
    name = serializers.CharField(max_length=5)
    contact = ContactInput()


class SampleApi(APIView):
    def post(self, request):
        serializer = SampleInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        if serializer.validated_data["name"] == "nope":
            raise exceptions.NotFound()
        if serializer.validated_data["name"] == "both":
            raise serializers.ValidationError(["phone or email, at least one"])
        return Response({"ok": True}, status=201)


urlpatterns = [
    path("test/log/", log_something),
    path("test/sample/", SampleApi.as_view()),
    *project_urlpatterns,
]
