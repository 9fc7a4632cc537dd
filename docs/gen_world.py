"""Write docs/world/domains.png: the same scenes in both domains, with one caption of each.

    python docs/gen_world.py
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from vladv_plugins.synthetic import SyntheticOptions, drawn_scenes, generate  # noqa: E402

OUT = Path(__file__).parent / "world" / "domains.png"
N = 6


def main() -> None:
    real = generate(SyntheticOptions(train_size=N), "train")
    opts = SyntheticOptions(train_size=N, train_domain="generated", mismatch_rate=0.34)
    gen = generate(opts, "train")
    shown = drawn_scenes(opts, "train", gen[2])
    fig, axes = plt.subplots(2, N, figsize=(2.6 * N, 7.4))
    for row, (imgs, caps, label) in enumerate(((real[0], real[1], "real"),
                                                (gen[0], gen[1], "generated"))):
        for i in range(N):
            ax = axes[row, i]
            ax.imshow(imgs[i].permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            note = " [mismatch]" if row == 1 and shown[i] != gen[2][i] else ""
            ax.set_title(f"{label} #{i}{note}", fontsize=9)
            ax.set_xlabel("\n".join(textwrap.wrap(caps[i][0], 34)), fontsize=7)
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=90)
    print(OUT)


if __name__ == "__main__":
    main()
