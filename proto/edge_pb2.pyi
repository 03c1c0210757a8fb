from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProbeRequest(_message.Message):
    __slots__ = ("refresh",)
    REFRESH_FIELD_NUMBER: _ClassVar[int]
    refresh: bool
    def __init__(self, refresh: _Optional[bool] = ...) -> None: ...

class Availability(_message.Message):
    __slots__ = ("available", "detail")
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    available: bool
    detail: str
    def __init__(self, available: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class Gpu(_message.Message):
    __slots__ = ("index", "name", "memory_bytes", "driver", "source")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    index: int
    name: str
    memory_bytes: int
    driver: str
    source: str
    def __init__(self, index: _Optional[int] = ..., name: _Optional[str] = ..., memory_bytes: _Optional[int] = ..., driver: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class Hardware(_message.Message):
    __slots__ = ("hostname", "cpu_cores", "cpu_arch", "memory_bytes", "gpus", "gpu_detail", "lava_sim", "loihi", "probed_at", "injected", "devices")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    CPU_CORES_FIELD_NUMBER: _ClassVar[int]
    CPU_ARCH_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    GPU_DETAIL_FIELD_NUMBER: _ClassVar[int]
    LAVA_SIM_FIELD_NUMBER: _ClassVar[int]
    LOIHI_FIELD_NUMBER: _ClassVar[int]
    PROBED_AT_FIELD_NUMBER: _ClassVar[int]
    INJECTED_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    cpu_cores: int
    cpu_arch: str
    memory_bytes: int
    gpus: _containers.RepeatedCompositeFieldContainer[Gpu]
    gpu_detail: str
    lava_sim: Availability
    loihi: Availability
    probed_at: str
    injected: _containers.RepeatedScalarFieldContainer[str]
    devices: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, hostname: _Optional[str] = ..., cpu_cores: _Optional[int] = ..., cpu_arch: _Optional[str] = ..., memory_bytes: _Optional[int] = ..., gpus: _Optional[_Iterable[_Union[Gpu, _Mapping]]] = ..., gpu_detail: _Optional[str] = ..., lava_sim: _Optional[_Union[Availability, _Mapping]] = ..., loihi: _Optional[_Union[Availability, _Mapping]] = ..., probed_at: _Optional[str] = ..., injected: _Optional[_Iterable[str]] = ..., devices: _Optional[_Iterable[str]] = ...) -> None: ...

class ProbeResponse(_message.Message):
    __slots__ = ("hardware",)
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    hardware: Hardware
    def __init__(self, hardware: _Optional[_Union[Hardware, _Mapping]] = ...) -> None: ...

class DeployChunk(_message.Message):
    __slots__ = ("sha256", "total_size", "device", "allow_downgrade", "numerics", "data")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    ALLOW_DOWNGRADE_FIELD_NUMBER: _ClassVar[int]
    NUMERICS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    total_size: int
    device: str
    allow_downgrade: bool
    numerics: str
    data: bytes
    def __init__(self, sha256: _Optional[str] = ..., total_size: _Optional[int] = ..., device: _Optional[str] = ..., allow_downgrade: _Optional[bool] = ..., numerics: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class SelfTest(_message.Message):
    __slots__ = ("passed", "cases", "max_abs_error", "exact", "atol", "rtol", "latency_ms", "detail")
    PASSED_FIELD_NUMBER: _ClassVar[int]
    CASES_FIELD_NUMBER: _ClassVar[int]
    MAX_ABS_ERROR_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    ATOL_FIELD_NUMBER: _ClassVar[int]
    RTOL_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    passed: bool
    cases: int
    max_abs_error: float
    exact: bool
    atol: float
    rtol: float
    latency_ms: float
    detail: str
    def __init__(self, passed: _Optional[bool] = ..., cases: _Optional[int] = ..., max_abs_error: _Optional[float] = ..., exact: _Optional[bool] = ..., atol: _Optional[float] = ..., rtol: _Optional[float] = ..., latency_ms: _Optional[float] = ..., detail: _Optional[str] = ...) -> None: ...

class ModelState(_message.Message):
    __slots__ = ("name", "version", "sha256", "backend", "backend_reason", "numerics", "selftest", "previous_version", "activated_at", "signed", "last_error")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    BACKEND_REASON_FIELD_NUMBER: _ClassVar[int]
    NUMERICS_FIELD_NUMBER: _ClassVar[int]
    SELFTEST_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTIVATED_AT_FIELD_NUMBER: _ClassVar[int]
    SIGNED_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    sha256: str
    backend: str
    backend_reason: str
    numerics: str
    selftest: SelfTest
    previous_version: str
    activated_at: str
    signed: bool
    last_error: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., sha256: _Optional[str] = ..., backend: _Optional[str] = ..., backend_reason: _Optional[str] = ..., numerics: _Optional[str] = ..., selftest: _Optional[_Union[SelfTest, _Mapping]] = ..., previous_version: _Optional[str] = ..., activated_at: _Optional[str] = ..., signed: _Optional[bool] = ..., last_error: _Optional[str] = ...) -> None: ...

class DeployResponse(_message.Message):
    __slots__ = ("model", "changed", "message")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    model: ModelState
    changed: bool
    message: str
    def __init__(self, model: _Optional[_Union[ModelState, _Mapping]] = ..., changed: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("hardware", "models", "stc_version")
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    STC_VERSION_FIELD_NUMBER: _ClassVar[int]
    hardware: Hardware
    models: _containers.RepeatedCompositeFieldContainer[ModelState]
    stc_version: str
    def __init__(self, hardware: _Optional[_Union[Hardware, _Mapping]] = ..., models: _Optional[_Iterable[_Union[ModelState, _Mapping]]] = ..., stc_version: _Optional[str] = ...) -> None: ...
