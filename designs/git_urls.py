"""git smart HTTP and Git LFS, under /<owner>/<design>.git/ (the .git is optional)."""

from django.urls import re_path

from designs import githttp, lfs

REPO = r"^(?P<owner>[A-Za-z0-9][A-Za-z0-9._-]*)/(?P<slug>[a-z0-9][a-z0-9._-]*?)(?:\.git)?/"
LFS = REPO + r"info/lfs/"

urlpatterns = [
    re_path(REPO + r"info/refs$", githttp.info_refs, name="git-info-refs"),
    re_path(
        REPO + r"(?P<service>git-upload-pack|git-receive-pack)$", githttp.service_rpc, name="git-service"
    ),
    re_path(LFS + r"objects/batch$", lfs.batch, name="lfs-batch"),
    re_path(
        LFS + r"objects/(?P<oid>[0-9a-f]{64})(?:/(?P<size>[0-9]{1,19}))?$",
        lfs.object_content,
        name="lfs-object",
    ),
    re_path(LFS + r"verify$", lfs.verify, name="lfs-verify"),
    re_path(LFS + r"locks$", lfs.locks, name="lfs-locks"),
    re_path(LFS + r"locks/verify$", lfs.locks_verify, name="lfs-locks-verify"),
    re_path(LFS + r"locks/(?P<lock_id>[0-9]{1,18})/unlock$", lfs.lock_unlock, name="lfs-lock-unlock"),
]
