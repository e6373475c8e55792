from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SampleType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TARGET: _ClassVar[SampleType]
    NONTARGET: _ClassVar[SampleType]
TARGET: SampleType
NONTARGET: SampleType

class Sample(_message.Message):
    __slots__ = ("sample_type", "sample_id", "mswc_embedding_vector", "keyword", "speaker")
    SAMPLE_TYPE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    MSWC_EMBEDDING_VECTOR_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    sample_type: SampleType
    sample_id: str
    mswc_embedding_vector: _containers.RepeatedScalarFieldContainer[float]
    keyword: str
    speaker: str
    def __init__(self, sample_type: _Optional[_Union[SampleType, str]] = ..., sample_id: _Optional[str] = ..., mswc_embedding_vector: _Optional[_Iterable[float]] = ..., keyword: _Optional[str] = ..., speaker: _Optional[str] = ...) -> None: ...

class DatasetMetadata(_message.Message):
    __slots__ = ("language", "target_keywords", "backend", "embedding_dim", "model_id", "sample_rate", "role", "params")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TARGET_KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    language: str
    target_keywords: _containers.RepeatedScalarFieldContainer[str]
    backend: str
    embedding_dim: int
    model_id: str
    sample_rate: int
    role: str
    params: _containers.ScalarMap[str, str]
    def __init__(self, language: _Optional[str] = ..., target_keywords: _Optional[_Iterable[str]] = ..., backend: _Optional[str] = ..., embedding_dim: _Optional[int] = ..., model_id: _Optional[str] = ..., sample_rate: _Optional[int] = ..., role: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Samples(_message.Message):
    __slots__ = ("samples", "metadata", "num_samples")
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    samples: _containers.RepeatedCompositeFieldContainer[Sample]
    metadata: DatasetMetadata
    num_samples: int
    def __init__(self, samples: _Optional[_Iterable[_Union[Sample, _Mapping]]] = ..., metadata: _Optional[_Union[DatasetMetadata, _Mapping]] = ..., num_samples: _Optional[int] = ...) -> None: ...
