// The little the pages need a script for; every page works without it.
"use strict";

// Row diffs computed at most this many per page, one after another (the server runs two
// table reads or diffs at once and queues the rest).
const ROW_DIFFS = 20;

function number(n) {
  return Number(n).toLocaleString("en-US");
}

async function fillRowCounts(el) {
  el.textContent = "row diff: computing\u2026";
  try {
    const answer = await fetch(el.dataset.src, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    const body = await answer.json();
    if (!answer.ok) {
      el.textContent = "row diff: " + body.error;
      el.classList.add("error");
      return;
    }
    const by = body.keys.length ? " (by " + body.keys.join(", ") + ")" : " (whole rows)";
    el.textContent =
      "+" + number(body.added) + " \u2212" + number(body.removed) + " ~" +
      number(body.modified) + " rows" + by;
    el.classList.add("done");
  } catch (e) {
    el.textContent = "row diff: not available";
    el.classList.add("error");
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  for (const select of document.querySelectorAll("select.autosubmit")) {
    select.addEventListener("change", () => select.form.submit());
  }
  const counts = Array.from(document.querySelectorAll(".rowcounts[data-src]"));
  for (const el of counts.slice(0, ROW_DIFFS)) {
    await fillRowCounts(el);
  }
});
