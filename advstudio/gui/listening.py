"""The "Listen through" choice: hear and see the clip and its adversarial as they would arrive
after a codec, a room or noise (core's LISTEN_CHOICES). A box in the Clip tab, the same
choices under View > Listen through, and L to step to the next; `notes` says what the model
predicts for the transformed audio, for the tab to place."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QMenu, QWidget

from advstudio.core.jobs import Heard
from advstudio.core.transforms.listen import AS_WRITTEN, LISTEN_CHOICES


class ListenBar(QWidget):
    chosen = Signal(str)  # the spec to listen through (AS_WRITTEN: none)

    def __init__(self, labels: list[str]) -> None:
        super().__init__()
        self.labels = labels
        self.box = QComboBox()
        for spec, title in LISTEN_CHOICES.items():
            self.box.addItem(title, spec)
        self.box.setToolTip(
            "show, play and classify the original and the adversarial after this transform (L)"
        )
        self.menu = QMenu("&Listen through", self)
        group = QActionGroup(self.menu)
        self.actions_by_spec: dict[str, QAction] = {}
        for index, (spec, title) in enumerate(LISTEN_CHOICES.items()):
            action = self.menu.addAction(title)
            action.setCheckable(True)
            group.addAction(action)
            action.triggered.connect(lambda _checked=False, i=index: self.box.setCurrentIndex(i))
            self.actions_by_spec[spec] = action
        self.menu.addSeparator()
        self.next_action = QAction("Next", self)
        self.next_action.setShortcut(QKeySequence("L"))
        self.next_action.triggered.connect(self.step)
        self.menu.addAction(self.next_action)
        self.notes = QLabel()
        self.notes.setWordWrap(True)
        self.notes.setVisible(False)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("listen through"))
        layout.addWidget(self.box)
        self.box.currentIndexChanged.connect(self._changed)
        self.actions_by_spec[AS_WRITTEN].setChecked(True)

    @property
    def spec(self) -> str:
        return self.box.currentData()

    @property
    def title(self) -> str:
        return LISTEN_CHOICES[self.spec]

    def step(self) -> None:
        """To the next choice (L), round to "as written" after the last."""
        self.box.setCurrentIndex((self.box.currentIndex() + 1) % self.box.count())

    def show_heard(self, heard: Heard | None) -> None:
        """The predictions on the transformed audio (`heard`; None: still at work), or
        nothing as written."""
        if self.spec == AS_WRITTEN:
            self.notes.setVisible(False)
            return
        if heard is None:
            text = f"through {self.title}: working…"
        else:
            original = self._prediction(heard.original_probabilities)
            text = f"through {self.title}: original {original}"
            if heard.adversarial_probabilities is not None:
                text += f", adversarial {self._prediction(heard.adversarial_probabilities)}"
            if heard.note:
                text += f" ({heard.note})"
        self.notes.setText(text)
        self.notes.setVisible(True)

    def _prediction(self, probabilities: np.ndarray) -> str:
        best = int(np.argmax(probabilities))
        return f"{self.labels[best]} {probabilities[best]:.2f}"

    def _changed(self, _index: int) -> None:
        self.actions_by_spec[self.spec].setChecked(True)
        self.chosen.emit(self.spec)
