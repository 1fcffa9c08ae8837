// The playground's job page, live: polls the job's JSON status about every second and shows
// each change (queued, generating, then the image or why there is none) without a reload.
// Without JavaScript the page refreshes itself instead (its <noscript> meta refresh).
(function () {
  "use strict";
  var job = document.getElementById("job");
  if (!job || job.dataset.done === "true") {
    return;
  }
  var url = job.dataset.statusUrl;

  function show(view) {
    job.dataset.state = view.state;
    var line = document.getElementById("job-line");
    if (line.textContent !== view.line) {
      line.textContent = view.line;
    }
    if (view.cost) {
      document.getElementById("job-cost").textContent = view.cost;
      document.getElementById("job-cost-line").hidden = false;
    }
    if (view.lineage) {
      var lineage = document.getElementById("job-lineage");
      lineage.textContent = view.lineage;
      lineage.hidden = false;
    }
    if (view.image_url) {
      document.getElementById("job-image").src = view.image_url;
      document.getElementById("job-gallery").href = view.gallery_url;
      document.getElementById("edit-form").action = view.edit_url;
      document.getElementById("job-result").hidden = false;
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(function (view) {
        show(view);
        if (view.done) {
          job.dataset.done = "true";
        } else {
          window.setTimeout(poll, 1000);
        }
      })
      .catch(function () {
        window.setTimeout(poll, 3000); // the server restarting, the network gone: try again slower
      });
  }

  window.setTimeout(poll, 1000);
})();
