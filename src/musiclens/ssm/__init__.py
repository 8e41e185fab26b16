"""Self-similarity matrices of layer activations (PAPERS §2.10).

- :mod:`.ssm`: cosine layer SSMs, reference SSMs (chroma, MFCC, onset strength, tempogram,
  same chord, same beat position) and their upper-triangle correlation;
- :mod:`.novelty`: Foote checkerboard novelty and boundary scoring against chord changes;
- :mod:`.frames`: resampling frame-level features between frame rates (a stated rule), labels
  at frame times, peak picking;
- :mod:`.pipeline`: :func:`ssm_analysis` (tidy tables) and :func:`ssm_to_folder`;
- :mod:`.plots`: figures.

Torch-free unless a network is run.
"""

from musiclens.ssm.frames import RESAMPLE_RULES, PeakPicker, resample_frames
from musiclens.ssm.novelty import NoveltyConfig, checkerboard_kernel, foote_novelty
from musiclens.ssm.pipeline import SSMResult, ssm_analysis, ssm_to_folder
from musiclens.ssm.ssm import CORRELATIONS, REFERENCE_SSMS, cosine_ssm, reference_ssms, ssm_correlation

__all__ = ["RESAMPLE_RULES", "PeakPicker", "resample_frames", "NoveltyConfig", "checkerboard_kernel", "foote_novelty",
           "SSMResult", "ssm_analysis", "ssm_to_folder", "CORRELATIONS", "REFERENCE_SSMS", "cosine_ssm",
           "reference_ssms", "ssm_correlation"]
