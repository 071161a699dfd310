"""`GET /api/status/demo-model/`: the demo model's training banner, for the page's script that
updates it without a reload. Anyone may ask: the login page shows the same banner."""

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference_worker import progress
from portal.core.demo_training import demo_training_status

STATES = (
    progress.STARTING,
    progress.PHANTOMS,
    progress.PREPROCESSING,
    progress.TRAINING,
    progress.DONE,
    progress.FAILED,
)


class DemoTrainingStatusApi(APIView):
    """The demo model's training: its stage, the minutes left (rounded up) and the banner's
    words; all null when no demo model was started here."""

    permission_classes = [AllowAny]

    @extend_schema_serializer(component_name="DemoTrainingStatus")
    class OutputSerializer(serializers.Serializer):
        state = serializers.ChoiceField(choices=STATES, allow_null=True)
        minutes_left = serializers.IntegerField(allow_null=True)
        text = serializers.CharField(allow_null=True)

    @extend_schema(
        operation_id="demo_model_status",
        responses={200: OutputSerializer},
    )
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(demo_training_status()).data)
