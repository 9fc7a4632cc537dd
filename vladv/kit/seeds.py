"""Seeds: where a plugin's random draws come from (docs/kit.md).

vladv results are reproducible because every random draw comes from a generator seeded from the
run seed and a salt that names the draw, never from the global generator:

- in an attack, the ``generator`` argument of ``perturb`` (the runner seeds it per batch), or
  ``ctx.generator(*salt)`` (:meth:`vladv.types.Context.generator`) for draws of your own;
- in a defense's loss function, :func:`step_generator` ``(ctx.seed, batch.step, *salt)``: the
  same draws after a resume;
- in a text augmenter, :func:`image_seed` ``(seed, index, *salt)``: a per-image seed, so pools do
  not depend on the dataset's order or size;
- anything else: :func:`derive_seed` ``(*parts)``, the one recipe (sha256 of the parts) behind
  all of the above.
"""

from vladv.pools import image_seed
from vladv.seeds import derive_seed
from vladv.training import step_generator

__all__ = ["derive_seed", "image_seed", "step_generator"]
