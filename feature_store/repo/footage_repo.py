"""Feast definitions of the Reference Footage Library (Authentic-Dubber's MRFL).

One entity (a footage clip, join key ``clip_id``) and one feature view per
emotion modality. Each view holds the modality's 256-d emotion vector (cosine
vector index) plus what retrieval hands back: speaker, emotion label, audio
path, and the clip id repeated as a feature, because
``retrieve_online_documents_v2`` has returned rows misaligned with their keys
and the stored id is how the caller checks alignment.

`feast apply` executes every .py file in this folder: keep it the only one.
"""

from feast import Entity, FeatureView, Field, FileSource
from feast.data_format import ParquetFormat
from feast.types import Array, Float32, String
from feast.value_type import ValueType

MODALITIES = ("scene", "face", "text", "audio")

footage_clip = Entity(
    name="footage_clip",
    join_keys=["clip_id"],
    value_type=ValueType.STRING,
    description="A footage clip of the corpus (the manifest's clip_id).",
)

# Only the footage splits (train by default): what retrieval may return.
footage_source = FileSource(
    name="footage_source",
    path="data/footage.parquet",
    file_format=ParquetFormat(),
    timestamp_field="event_timestamp",
    description="Emotion vectors and labels of the footage clips (dubops library build).",
)


def _footage_view(modality: str) -> FeatureView:
    return FeatureView(
        name=f"footage_{modality}",
        entities=[footage_clip],
        schema=[
            Field(
                name=f"{modality}_vector",
                dtype=Array(Float32),
                vector_index=True,
                vector_search_metric="COSINE",
                description=f"L2-normalised {modality} emotion vector.",
            ),
            Field(name="footage_id", dtype=String, description="clip_id, stored as a feature."),
            Field(name="speaker", dtype=String),
            Field(name="emotion", dtype=String),
            Field(name="audio_path", dtype=String),
        ],
        source=footage_source,
        online=True,
        tags={"modality": modality},
    )


footage_scene = _footage_view("scene")
footage_face = _footage_view("face")
footage_text = _footage_view("text")
footage_audio = _footage_view("audio")
