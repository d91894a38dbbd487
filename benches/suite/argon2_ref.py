#!/usr/bin/env python3
"""H_ref for benches/suite.rs: the Argon2id time of the C reference implementation (argon2-cffi).

Usage: argon2_ref.py MEMORY_KIB ITERATIONS PARALLELISM SAMPLES [PHC PASSWORD]

Hashes a 16-character password with a 16-byte salt into 32 bytes (what a verification computes)
SAMPLES times, one after the other on one thread, each timed with time.perf_counter(), after one
untimed warm-up call; prints one JSON line with the median and every sample, in seconds.

With PHC and PASSWORD (a hash made by the project's own hasher, and its password), it also checks
that the C reference verifies that hash, and that it refuses the password with one character
changed: the project's timing is only comparable if its hash is the real Argon2id.
"""
import json
import statistics
import sys
import time

try:
    import argon2
    from argon2.low_level import Type, hash_secret_raw
except ImportError:
    sys.exit("argon2-cffi is not installed: pip install argon2-cffi")


def main() -> None:
    memory_kib, iterations, parallelism, samples = (int(a) for a in sys.argv[1:5])
    secret, salt = b"Correct-Horse-42", b"portcullis-bench"

    def once() -> None:
        hash_secret_raw(secret, salt, time_cost=iterations, memory_cost=memory_kib,
                        parallelism=parallelism, hash_len=32, type=Type.ID)

    once()
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    try:
        from importlib.metadata import version
        library = "argon2-cffi " + version("argon2-cffi")
    except Exception:  # noqa: BLE001 - the version is informative only
        library = "argon2-cffi"
    result = {"median_s": statistics.median(times), "samples_s": times,
              "library": library, "python": sys.version.split()[0]}
    if len(sys.argv) >= 7:
        phc, password = sys.argv[5], sys.argv[6]
        checker = argon2.PasswordHasher()

        def verifies(candidate: str) -> bool:
            try:
                return checker.verify(phc, candidate)
            except argon2.exceptions.VerificationError:
                return False
            except argon2.exceptions.InvalidHashError:
                return False

        result["phc_verified"] = verifies(password)
        result["phc_rejects_wrong"] = not verifies(password[:-1] + chr(ord(password[-1]) ^ 1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
