"""One combination from Python: the embedded tiny CLIP, defended with MAT, attacked with SGA.

python examples/python_api.py
"""

import vladv

records = vladv.run(
    backbone="clip",
    dataset="synthetic-aerial",
    defense="mat",
    attack="sga",
    seed=0,
    output="runs/python-api",
)
for rec in records:
    clean, adv = rec["metrics"]["clean"], rec["metrics"]["adversarial"]
    print(
        f"{rec['config']['defense']['name']} vs {rec['config']['attack']['name']}: "
        f"TR@1 {clean['tr_r1']:.1f} → {adv['tr_r1']:.1f}, IR@1 {clean['ir_r1']:.1f} → "
        f"{adv['ir_r1']:.1f}"
    )
