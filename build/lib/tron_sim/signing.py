"""secp256k1 signatures over a transaction id, the way java-tron checks them and tronpy makes them.

A Tron signature is 65 bytes r‖s‖v over the 32-byte txID itself (no further hashing); the signer's
address is recovered from it and compared with the permission's keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from coincurve import PrivateKey, PublicKey

from tron_sim.encoding import public_key_to_address, sha256

# The built-in funded wallet. Its key is derived at run time from this documented seed so that no
# private key is written in the repository; anyone can derive it, which is fine for a simulator.
FAUCET_SEED = b"crypto-checkout tron simulator faucet"
WITNESS_SEED = "crypto-checkout tron simulator witness {index}"
WALLET_SEED = "crypto-checkout tron simulator wallet:{label}"


@dataclass(frozen=True, slots=True)
class Signer:
    """A key the simulator holds: the faucet, a witness, or a labelled wallet."""

    key: PrivateKey
    address: bytes

    @classmethod
    def from_seed(cls, seed: bytes) -> Signer:
        key = PrivateKey(sha256(seed))
        public = key.public_key.format(compressed=False)[1:]
        return cls(key=key, address=public_key_to_address(public))

    def sign(self, digest: bytes) -> bytes:
        return self.key.sign_recoverable(digest, hasher=None)


def faucet() -> Signer:
    return Signer.from_seed(FAUCET_SEED)


def witness(index: int) -> Signer:
    return Signer.from_seed(WITNESS_SEED.format(index=index).encode())


def labelled_wallet(label: str) -> Signer:
    return Signer.from_seed(WALLET_SEED.format(label=label).encode())


def recover_signer(digest: bytes, signature: bytes) -> bytes | None:
    """The 21-byte address that made `signature` over `digest`, or None if it is not a signature."""
    if len(signature) != 65:
        return None
    v = signature[64]
    if v >= 27:
        v -= 27
    if v not in (0, 1):
        return None
    try:
        public = PublicKey.from_signature_and_message(
            signature[:64] + bytes([v]), digest, hasher=None
        )
    except Exception:  # coincurve raises plain Exception for an unrecoverable signature
        return None
    return public_key_to_address(public.format(compressed=False)[1:])
