// The queue page, live: the server sends the queue's table over server-sent events
// (/dashboard/queue/events) whenever it changes, and this swaps it in. Without this
// script (or without EventSource) the page reloads itself (its <noscript> refresh) or by
// its Reload link. Served from /static: the Content-Security-Policy allows no inline script.
"use strict";

(function () {
  var region = document.getElementById("queue");
  var live = document.getElementById("queue-live");
  var summary = document.getElementById("queue-summary");
  if (!region || !live || !window.EventSource) {
    return;
  }
  var source = new EventSource(region.getAttribute("data-events"));

  function say(state, text) {
    live.setAttribute("data-state", state);
    live.textContent = text;
  }

  var fresh = true; // the first table after (re)connecting is the state, not a change

  source.addEventListener("open", function () {
    fresh = true;
    say("live", "Updates live.");
  });
  source.addEventListener("error", function () {
    // EventSource reconnects by itself after a dropped stream, but not after a refusal
    // (the server busy, the session gone): then only a reload helps.
    if (source.readyState === EventSource.CLOSED) {
      say("off", "Live updates stopped: reload the page to see changes.");
    } else {
      say("reconnecting", "Reconnecting… (or reload the page)");
    }
  });
  source.addEventListener("queue", function (event) {
    // Keep keyboard focus on the same job's button when the table is replaced.
    var focused = document.activeElement;
    var job = focused && region.contains(focused) ? focused.getAttribute("data-job") : null;
    region.innerHTML = event.data;
    if (job) {
      var again = region.querySelector('button[data-job="' + job + '"]');
      if (again) {
        again.focus();
      }
    }
    var table = region.querySelector("[data-summary]");
    if (summary && table) {
      summary.textContent = "Queue updated: " + table.getAttribute("data-summary") + ".";
    }
    if (!fresh) {
      say("live", "Updates live. Last change " + new Date().toLocaleTimeString() + ".");
    }
    fresh = false;
  });
  source.addEventListener("signed-out", function () {
    source.close();
    window.location.reload(); // shows the signed-out page
  });
})();
