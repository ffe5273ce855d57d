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
