"""An upload handler that encrypts files as they stream in.

Django's default handlers keep uploads in memory or in a plaintext temporary
file; evidence must never touch the disk unencrypted, so this handler feeds
every chunk straight into the vault's staging writer.
"""

from __future__ import annotations

from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler

from .vault import StagedFile, StagingWriter


class EncryptedUpload(UploadedFile):
    """What a view receives for an uploaded file: the staged, encrypted file."""

    def __init__(self, staged: StagedFile, name: str, content_type: str | None):
        super().__init__(file=None, name=name, content_type=content_type, size=staged.size)
        self.staged = staged

    def open(self, mode=None):  # the plaintext is reached through the vault only
        raise ValueError("encrypted uploads are read through cophub.evidence.services")

    def close(self):
        return None


class EncryptingUploadHandler(FileUploadHandler):
    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self._writer = StagingWriter(original_name=self.file_name or "")
        _track(self.request, self._writer)

    def receive_data_chunk(self, raw_data, start):
        self._writer.write(raw_data)
        return None

    def file_complete(self, file_size):
        staged = self._writer.finish()
        self._writer = None
        return EncryptedUpload(staged, self.file_name or "", self.content_type)

    def upload_interrupted(self):
        writer = getattr(self, "_writer", None)
        if writer is not None:
            writer.abort()
            self._writer = None


# Django does not tell upload handlers when parsing fails half-way (a broken
# multipart body), and a view may never reach the files (a form error, a rate
# limit). Every staging writer is therefore noted on its request, and the
# middleware below removes whatever the request did not commit to the vault.
# Nothing staged can outlive its request anyway: its data key lives only in
# this process's memory.


def _track(request, writer: StagingWriter) -> None:
    if request is None:
        return
    if not hasattr(request, "_cophub_staging"):
        request._cophub_staging = []
    request._cophub_staging.append(writer)


def discard_unclaimed(request) -> None:
    for writer in getattr(request, "_cophub_staging", ()):
        if writer.staged.sha256:  # finished: remove unless the vault took it
            writer.staged.discard()
        else:  # the body broke off in the middle of this file
            writer.abort()
    request._cophub_staging = []


class DiscardUnclaimedUploadsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            return self.get_response(request)
        finally:
            discard_unclaimed(request)
