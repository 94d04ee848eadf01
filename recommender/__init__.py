"""AutoDistiller's recommender: meta-features, sweep records, candidate space, meta-learner.

scikit-learn and numpy only; imports the torch-free parts of ``models`` and never torch itself
(encoders for meta-features are injected callables).
"""

from recommender.baselines import FixedDefaultRecommender, NearestDatasetsRecommender
from recommender.distiller_import import read_distiller_features, read_distiller_table
from recommender.evaluation import heldout_evaluation, leave_one_dataset_out, plot_evaluation
from recommender.learner import MetaLearner, Recommendation
from recommender.meta_features import compute_meta_features
from recommender.persistence import ArtifactError, load_meta_learner, save_meta_learner
from recommender.records import SweepRecord, read_records, records_digest, write_records
from recommender.space import PAPER_GRID, SearchGrid, candidate_space

__all__ = [
    "PAPER_GRID",
    "ArtifactError",
    "FixedDefaultRecommender",
    "MetaLearner",
    "NearestDatasetsRecommender",
    "Recommendation",
    "SearchGrid",
    "SweepRecord",
    "candidate_space",
    "compute_meta_features",
    "heldout_evaluation",
    "leave_one_dataset_out",
    "load_meta_learner",
    "plot_evaluation",
    "read_distiller_features",
    "read_distiller_table",
    "read_records",
    "records_digest",
    "save_meta_learner",
    "write_records",
]
