"""A stand-in for xtquant's native `datacenter` library (Windows-only), answering xtdata.py's client
calls from a `SimXtData`: JSON for `get_full_tick`, BSON buffers for `get_instrument_detail`, plain
lists for sectors. It serves as the contract harness for the data path: the wheel's unmodified
xtdata.py runs over it, so the shapes the simulator gives the adapter are checked against what xtdata
itself makes of the native answers. (Bars go through xtdata's `v4` binary path and pandas, which the
harness does not cover.)"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from .simxtdata import SimXtData


class Holder:
    source: SimXtData | None = None


def module(bson: Any) -> SimpleNamespace:
    """The object installed as `xtquant.datacenter`; `bson` is the wheel's own xtbson."""

    class IPythonApiClient:
        def init(self) -> None:
            return None

        def load_config(self, path: str, section: str) -> int:
            return 0

        def set_config_addr(self, addr: str) -> None:
            self.addr = addr

        def registerCommonControlCallback(self, name: str, cb: Any) -> None:
            return None

        def connect(self) -> tuple[int, str]:
            return (0, "") if Holder.source is not None else (-1, "no simulator")

        def is_connected(self) -> bool:
            return Holder.source is not None

        def shutdown(self) -> None:
            return None

        def get_data_dir(self) -> str:
            return "sim-datadir"

        def get_app_dir(self) -> str:
            return "sim-app"

        def get_server_tag(self) -> bytes:
            return bytes(bson.BSON.encode({"tag": "qmt-mcp simulator"}))

        def get_peer_addr(self) -> str:
            return getattr(self, "addr", "")

        def commonControl(self, name: str, param: bytes) -> bytes:
            return bytes(bson.BSON.encode({}))

        def _src(self) -> SimXtData:
            if Holder.source is None:
                raise RuntimeError("no simulator behind the datacenter stand-in")
            return Holder.source

        def get_full_tick(self, codes: list[str]) -> str:
            return json.dumps(self._src().get_full_tick(list(codes)))

        def get_instrument_detail(self, code: str) -> bytes:
            detail = self._src().get_instrument_detail(code)
            return b"" if detail is None else bytes(bson.BSON.encode(detail))

        def get_sector_list(self) -> list[str]:
            return self._src().get_sector_list()

        def get_stock_list_in_sector(self, name: str, real_timetag: int = -1) -> list[str]:
            return self._src().get_stock_list_in_sector(name, real_timetag)

    return SimpleNamespace(
        rpc_init=lambda config_dir: 0, get_local_server_port=lambda: 58610,
        register_create_nparray=lambda fn: None, IPythonApiClient=IPythonApiClient,
    )
