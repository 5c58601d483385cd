"""git smart HTTP and Git LFS, under /<owner>/<design>.git/ (the .git is optional)."""

from django.urls import re_path

from designs import githttp

REPO = r"^(?P<owner>[A-Za-z0-9][A-Za-z0-9._-]*)/(?P<slug>[a-z0-9][a-z0-9._-]*?)(?:\.git)?/"

urlpatterns = [
    re_path(REPO + r"info/refs$", githttp.info_refs, name="git-info-refs"),
    re_path(REPO + r"(?P<service>git-upload-pack|git-receive-pack)$", githttp.service_rpc, name="git-service"),
]
