# The native half of plasma_stream (python/src/lib.rs). Not public: use plasma_stream.Client.
from typing import Callable, List, Optional, Tuple

# (id, status, reason code, reason name, reason text, bytes moved, attempts, duration ms)
_Outcome = Tuple[bytes, int, int, str, str, int, int, int]

class NativeClient:
    def __init__(
        self,
        address: str,
        *,
        from_env: bool,
        insecure: bool,
        trust: List[str],
        trust_file: Optional[str],
        ca: Optional[str],
        identity_dir: Optional[str],
        timeout: Optional[float],
        transport: str,
    ) -> None: ...
    @property
    def server(self) -> str: ...
    @property
    def transport(self) -> str: ...
    def sync(
        self,
        requests: List[Tuple[str, str, bytes]],
        progress: Optional[Callable[[tuple], object]] = None,
        timeout: Optional[float] = None,
    ) -> List[Tuple[int, List[_Outcome]]]: ...
    def copy(self, ids: bytes) -> List[Tuple[bytes, bytes, bytes]]: ...
    def take(self, ids: bytes) -> List[Tuple[bytes, bytes, bytes]]: ...
    def close(self) -> None: ...

def status_table() -> List[Tuple[int, str]]: ...
def reason_table() -> List[Tuple[int, str]]: ...
