"""Packing a backup's files: zstd compression and openssl encryption, each file on its own, and back; the
seal that makes an encrypted backup's manifest (and through its hashes, every file) tamper-evident."""

import hashlib
import hmac
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor

from . import OpsError, host, integrity

# PBKDF2 rounds for openssl's per-file key derivation (the key file is a long random secret).
ENCRYPTION_ITERATIONS = 10000
# The seal's key is derived from the backup key with this context, apart from the encryption's.
SEAL_CONTEXT = b"stockdb backup manifest seal v1\0"


def openssl_files(root, key_file, iterations, decrypt, workers):
    """Encrypt each file under root to <file>.enc, or decrypt each *.enc back; originals removed.

    AES-256-CBC with a PBKDF2-derived key and a random salt per file. The key file holds a long
    random secret (the role requires 32+ characters), so a modest iteration count is safe, and
    it is recorded in the manifest so older backups stay readable if it changes.
    """
    jobs = []
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            if decrypt and not name.endswith(".enc"):
                continue
            jobs.append((path, path[:-4] if decrypt else path + ".enc"))

    def one(job):
        source, target = job
        host.run(["openssl", "enc", "-d" if decrypt else "-e", "-aes-256-cbc", "-pbkdf2", "-iter", str(iterations), "-salt",
                  "-pass", "file:" + key_file, "-in", source, "-out", target])
        os.unlink(source)

    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
        list(pool.map(one, jobs))


def pack(settings, root):
    """Compress, then encrypt, every file under root as the settings say."""
    if settings["compress"]:
        host.run(["zstd", "-q", "--rm", "-r", f"-{int(settings['compress_level'])}", "-T0", root])
    if settings["encrypt_key_file"]:
        openssl_files(root, settings["encrypt_key_file"], ENCRYPTION_ITERATIONS, False, settings["parallel"])


def description(settings):
    """What pack() does, for the manifest: compress, encrypted, encryption, key_fingerprint."""
    key = settings["encrypt_key_file"]
    return dict(compress=f"zstd-{settings['compress_level']}" if settings["compress"] else None, encrypted=bool(key),
                encryption=f"aes-256-cbc pbkdf2 {ENCRYPTION_ITERATIONS}" if key else None,
                key_fingerprint=integrity.sha256_file(key)[:16] if key else None)


def unpack(settings, manifest, target, staging):
    """Copy the backup's data/ to target, decrypted and decompressed (staging/ for zstd's mirror output)."""
    if manifest["encrypted"] and not settings["encrypt_key_file"]:
        raise OpsError(f"backup {manifest['name']} is encrypted; set encrypt_key_file")
    if manifest["encrypted"] and integrity.sha256_file(settings["encrypt_key_file"])[:16] != manifest["key_fingerprint"]:
        raise OpsError(f"encrypt_key_file {settings['encrypt_key_file']} is not the key "
                       f"backup {manifest['name']} was encrypted with")
    source = os.path.join(manifest["path"], "data")
    if manifest["encrypted"]:
        shutil.copytree(source, target)
        iterations = int(manifest["encryption"].rsplit(" ", 1)[1])
        openssl_files(target, settings["encrypt_key_file"], iterations, True, settings["parallel"])
        if manifest["compress"]:
            host.run(["zstd", "-q", "-d", "--rm", "-r", "-T0", target])
    elif manifest["compress"]:
        # decompress straight from the backup into staging (no copy of the compressed files first)
        host.run(["zstd", "-q", "-d", "-r", "-T0", source, "--output-dir-mirror", staging])
        mirrored = os.path.join(staging, os.path.relpath(source, "/"))
        os.rename(mirrored, target)
        shutil.rmtree(os.path.join(staging, os.path.relpath(source, "/").split(os.sep)[0]), ignore_errors=True)
    else:
        shutil.copytree(source, target)
    return target


def _seal_of(key_file, manifest):
    with open(key_file, "rb") as handle:
        key = hashlib.sha256(SEAL_CONTEXT + handle.read()).digest()
    text = json.dumps({k: v for k, v in manifest.items() if k not in ("seal", "path")}, sort_keys=True,
                      separators=(",", ":")).encode()
    return "hmac-sha256:" + hmac.new(key, text, hashlib.sha256).hexdigest()


def seal(settings, manifest):
    """Add the seal to a manifest when backups are encrypted: an HMAC-SHA256 of the whole manifest under a key
    derived from the backup key. The manifest holds every file's SHA-256, so whoever changes a file, or the
    manifest to match it, and has not the key, breaks the seal (AES-CBC alone detects neither)."""
    if settings["encrypt_key_file"]:
        manifest["seal"] = _seal_of(settings["encrypt_key_file"], manifest)
    return manifest


def check_seal(settings, manifest):
    """Problems with a backup's seal. Where backups are encrypted (encrypt_key_file set), every backup must carry
    the seal of this key: an unsealed one - encrypted or not - cannot be told from one forged or swapped in."""
    name = manifest["name"]
    if not settings["encrypt_key_file"]:
        return [f"{name}: encrypted; set encrypt_key_file to check its seal"] if manifest.get("encrypted") else []
    found = manifest.get("seal")
    if not found:
        return [f"{name}: not sealed, so it cannot be told from a forged backup (taken before sealing, or its "
                "seal removed): take a new full backup"]
    if not hmac.compare_digest(str(found), _seal_of(settings["encrypt_key_file"], manifest)):
        return [f"{name}: the seal does not match the manifest: changed after the backup was taken (tampered), or "
                f"encrypt_key_file is not the key it was taken with"]
    return []


def chain_problems(settings, chain):
    """Everything wrong with a chain of backups before it is used: each one's seal, then its files."""
    return [problem for manifest in chain for problem in check_seal(settings, manifest) + integrity.check_files(manifest)]
