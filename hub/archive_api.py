"""API of account archives: ask for an export and download it, upload an archive for
import and follow it, claim its records, and (on the source hub) sign the proof that
lets another hub's account claim them. The same calls as the pages (hub.portability)."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hub import portability
from hub.archive_views import archive_response
from hub.auth import signed_in_user
from hub.inputs import Input
from hub.models import AccountArchive, ArchiveImport
from hub.permissions import AUTHENTICATED
from hub.schema import errors


class ArchiveOutput(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField(help_text="Where to fetch the file once it is ready.")

    class Meta:
        model = AccountArchive
        fields = [
            "id",
            "status",
            "progress",
            "stage",
            "size",
            "sha256",
            "error",
            "created_at",
            "finished_at",
            "expires_at",
            "download_url",
        ]

    def get_download_url(self, archive: AccountArchive) -> str | None:
        if archive.status != AccountArchive.Status.READY:
            return None
        request = self.context["request"]
        return request.build_absolute_uri(reverse("api-archive-download", args=[archive.pk]))


class ImportReportOutput(serializers.Serializer):
    counts = serializers.DictField(child=serializers.IntegerField(), default=dict)
    notes = serializers.ListField(child=serializers.CharField(), default=list)


class ImportOutput(serializers.ModelSerializer):
    report = ImportReportOutput()
    signature = serializers.CharField(
        help_text="verified: signed by a key this hub knows the source hub holds; unverified: "
        "a hub this one cannot check (its records stay unverified); empty until read."
    )

    class Meta:
        model = ArchiveImport
        fields = [
            "id",
            "status",
            "progress",
            "stage",
            "source_hub",
            "source_account",
            "signature",
            "report",
            "error",
            "created_at",
            "finished_at",
            "claimed_at",
        ]


class ImportInput(Input):
    file = serializers.FileField(help_text="The account archive (.zip) another hub exported.")


class ChallengeOutput(serializers.Serializer):
    challenge = serializers.CharField()
    authorise_url = serializers.URLField(
        help_text="The source hub's page where the archive's account signs the challenge."
    )


class ClaimInput(Input):
    proof = serializers.DictField(help_text="The proof of account control the source hub signed.")


class ClaimOutput(serializers.Serializer):
    claimed = serializers.IntegerField(help_text="How many records are now claimed.")


class AuthoriseInput(Input):
    challenge = serializers.CharField(min_length=16, max_length=128)
    audience = serializers.URLField(
        max_length=500, help_text="The address of your account on the hub that will claim your records."
    )


class ArchiveListApi(generics.ListAPIView):
    permission_classes = AUTHENTICATED
    serializer_class = ArchiveOutput

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return AccountArchive.objects.none()
        return portability.archives_of(signed_in_user(self.request))

    @extend_schema(request=None, responses={201: ArchiveOutput, **errors(409)})
    def post(self, request: Request) -> Response:
        """Ask for an archive of everything you have here; built in the background (one at a time)."""
        archive = portability.archive_request(owner=signed_in_user(request))
        archive.refresh_from_db()  # the build may have run already (no broker)
        return Response(ArchiveOutput(archive, context={"request": request}).data, status=201)


class ArchiveDetailApi(APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(responses=ArchiveOutput)
    def get(self, request: Request, archive_id: str) -> Response:
        archive = portability.archive_get(owner=signed_in_user(request), archive_id=archive_id)
        return Response(ArchiveOutput(archive, context={"request": request}).data)


class ArchiveDownloadApi(APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(
        responses={(200, "application/zip"): OpenApiTypes.BINARY, **errors(409)},
        description="The archive's file; 409 while it is being built.",
    )
    def get(self, request: Request, archive_id: str):
        archive = portability.archive_get(owner=signed_in_user(request), archive_id=archive_id)
        return archive_response(archive)


class ImportListApi(generics.ListAPIView):
    permission_classes = AUTHENTICATED
    serializer_class = ImportOutput
    # An archive travels in multipart only.
    parser_classes = [MultiPartParser]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ArchiveImport.objects.none()
        return portability.imports_of(signed_in_user(self.request))

    @extend_schema(request={"multipart/form-data": ImportInput}, responses={201: ImportOutput, **errors(409)})
    def post(self, request: Request) -> Response:
        """Upload an archive to import into your account; checked and imported in the background."""
        data = ImportInput(data=request.data)
        data.is_valid(raise_exception=True)
        job = portability.archive_import_start(
            account=signed_in_user(request), upload=data.validated_data["file"]
        )
        job.refresh_from_db()
        return Response(ImportOutput(job).data, status=201)


class ImportDetailApi(APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(responses=ImportOutput)
    def get(self, request: Request, import_id: str) -> Response:
        job = portability.import_get(account=signed_in_user(request), import_id=import_id)
        return Response(ImportOutput(job).data)


class ImportChallengeApi(APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(request=None, responses={201: ChallengeOutput, **errors(409)})
    def post(self, request: Request, import_id: str) -> Response:
        """A fresh challenge for the archive's hub to sign, and where to sign it."""
        job = portability.import_get(account=signed_in_user(request), import_id=import_id)
        challenge = portability.claim_start(archive_import=job)
        return Response({"challenge": challenge, "authorise_url": portability.authorise_url(job)}, status=201)


class ImportClaimApi(APIView):
    permission_classes = AUTHENTICATED
    parser_classes = [JSONParser]

    @extend_schema(request=ClaimInput, responses={200: ClaimOutput})
    def post(self, request: Request, import_id: str) -> Response:
        """Claim the import's verified records with the proof the archive's hub signed."""
        job = portability.import_get(account=signed_in_user(request), import_id=import_id)
        data = ClaimInput(data=request.data)
        data.is_valid(raise_exception=True)
        claimed = portability.records_claim(archive_import=job, proof=data.validated_data["proof"])
        return Response({"claimed": claimed})


class AuthoriseApi(APIView):
    """On the source hub: sign that an account on another hub (the audience) may claim
    your records there, answering that hub's challenge. Valid for 30 minutes."""

    permission_classes = AUTHENTICATED
    parser_classes = [JSONParser]

    @extend_schema(
        request=AuthoriseInput, responses={201: OpenApiTypes.OBJECT}, operation_id="records_authorise"
    )
    def post(self, request: Request) -> Response:
        data = AuthoriseInput(data=request.data)
        data.is_valid(raise_exception=True)
        proof = portability.account_control_proof(user=signed_in_user(request), **data.validated_data)
        return Response(proof, status=201)
