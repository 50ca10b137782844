// "Select all" boxes: <input type="checkbox" data-select-all="NAME"> ticks every box
// called NAME in its form, and unticks itself when one of them is unticked.
// Progressive enhancement only: the server honours "all_permissions" on its own.
"use strict";
document.addEventListener("change", (event) => {
  const box = event.target;
  if (!(box instanceof HTMLInputElement) || box.type !== "checkbox" || !box.form) {
    return;
  }
  const group = box.dataset.selectAll;
  if (group) {
    for (const other of box.form.querySelectorAll("input[type=checkbox]")) {
      if (other.name === group) {
        other.checked = box.checked;
      }
    }
    return;
  }
  if (!box.checked) {
    for (const all of box.form.querySelectorAll("input[data-select-all]")) {
      if (all.dataset.selectAll === box.name) {
        all.checked = false;
      }
    }
  }
});
