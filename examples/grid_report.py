"""A grid with a report: three defenses × two attacks × two seeds, then table, CSV and plots.

python examples/grid_report.py
"""

import vladv

vladv.run(
    defense=["none", "tecoa", "mat"],
    attack=["pgd", "sga"],
    seed=[0, 1],
    output="runs/grid-example",
    save_examples=4,
)
result = vladv.report("runs/grid-example")
for row in result["rows"]:
    print(
        f"{row['defense']:>8} {row['attack_label']:<16} adv TR@1 "
        f"{row['adversarial_tr_r1_mean']:.1f} ± {row['adversarial_tr_r1_std']:.1f}"
    )
print("files:", result["files"])
