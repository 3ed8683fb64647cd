"""Class labels as read: integer labels renamed by data.label_names, and the checks that names and training labels
agree (text and numeric sequences alike). Torch-free."""

from __future__ import annotations

from typing import TYPE_CHECKING

from grutool.errors import UserError

if TYPE_CHECKING:
    from grutool.config import DataConfig


def name_labels(cfg: DataConfig, labels: list[str]) -> list[str]:
    """Integer labels renamed by data.label_names; a label without a name is kept as read
    (at eval it is then an unseen label; prepare refuses one in train)."""
    from grutool.config import label_name_map

    names = label_name_map(cfg)
    return labels if names is None else [names.get(label, label) for label in labels]


def check_label_names(cfg: DataConfig, gold: list[str]) -> None:
    """Every training label has a name and every named id occurs in train."""
    from grutool.config import label_name_map

    names = label_name_map(cfg)
    if names is None:
        return
    unnamed = sorted(set(gold) - set(names.values()))
    words = [u for u in unnamed if not str(u).lstrip("-").isdigit()]
    if words:  # names already: label_names names integer ids (adding these was refused: not an id)
        raise UserError(f"data.label_names: names integer label ids, and the labels of {cfg.train} column "
                        f"'{cfg.label_column}' are names already ({words[:10]}); remove data.label_names")
    if unnamed:
        raise UserError(f"data.label_names: no name for label(s) {unnamed[:10]} of {cfg.train} column "
                        f"'{cfg.label_column}' (named: {sorted(names)[:10]}); add them to data.label_names")
    absent = sorted(k for k, v in names.items() if v not in set(gold))
    if absent:
        raise UserError(f"data.label_names: label id(s) {absent[:10]} never occur in {cfg.train} column "
                        f"'{cfg.label_column}'; remove them or check data.label_column")
