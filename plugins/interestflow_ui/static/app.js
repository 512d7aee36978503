/* The Interestflow page: fetches its JSON endpoints (api/...) and renders four sections with
 * IFCharts. All data goes into the DOM as text (never as HTML). */
(function () {
  "use strict";
  var USER_ID = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$/;
  // slates logged without an exploration flag (e.g. by the shop's earlier recommender)
  var ARM_NAMES = { unlabelled: "earlier slates (no exploration flag)" };

  // ---- tiny DOM helpers --------------------------------------------------------------------
  function h(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === undefined || v === null || v === false) return;
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    });
    [].concat(children || []).forEach(function (c) {
      if (c === null || c === undefined || c === false) return;
      node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    });
    return node;
  }

  function body(id) {
    var b = document.querySelector("#" + id + " > .body");
    b.textContent = "";
    b.removeAttribute("data-state");
    return b;
  }

  function note(text, kind) {
    return h("p", { class: "note" + (kind ? " " + kind : ""), text: text });
  }

  var fmt = {
    num: function (v, d) {
      if (v === null || v === undefined || v === "") return "–";
      if (typeof v !== "number") return String(v);
      return Math.abs(v) >= 1000 ? v.toLocaleString("en") : v.toFixed(d === undefined ? 4 : d).replace(/\.?0+$/, "") || "0";
    },
    pct: function (v) {
      return v === null || v === undefined ? "–" : (100 * v).toFixed(1) + " %";
    },
    time: function (iso) {
      if (!iso) return "–";
      var d = new Date(iso);
      return isNaN(d) ? String(iso) : d.toISOString().replace("T", " ").slice(0, 19);
    },
    json: function (v) {
      if (v === null || v === undefined) return "–";
      return typeof v === "object" ? JSON.stringify(v) : String(v);
    },
  };

  function badge(ok, yes, no) {
    return h("span", { class: "badge " + (ok ? "ok" : "bad"), text: ok ? yes : no });
  }

  function table(columns, rows, attrs) {
    var head = h("tr", {}, columns.map(function (c) { return h("th", { text: c.label, class: c.num ? "num" : "" }); }));
    var trs = rows.map(function (r) {
      return h("tr", { "data-key": attrs && attrs.key ? r[attrs.key] : null }, columns.map(function (c) {
        var v = c.render ? c.render(r) : r[c.key];
        var cell = h("td", { class: c.num ? "num" : "" });
        if (v instanceof Node) cell.appendChild(v);
        else cell.textContent = v === null || v === undefined ? "–" : String(v);
        return cell;
      }));
    });
    return h("table", { class: "grid", id: attrs && attrs.id }, [h("thead", {}, head), h("tbody", {}, trs)]);
  }

  function chartBox(title, cls) {
    var box = h("div", { class: "chart " + (cls || "") });
    var wrap = h("figure", { class: "chart-wrap" }, [h("figcaption", { text: title }), box]);
    return { wrap: wrap, box: box };
  }

  // ---- fetching ----------------------------------------------------------------------------
  function api(path, payload) {
    var init = { credentials: "same-origin", headers: { Accept: "application/json" } };
    if (payload !== undefined) {
      init.method = "POST";
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    return fetch(path, init).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        if (res.ok) return data;
        var err = new Error(data.detail || res.status + " " + res.statusText);
        err.status = res.status;
        throw err;
      });
    });
  }

  function failed(id) {
    return function (err) {
      var b = body(id);
      if (err.status === 401 || err.status === 403) {
        b.appendChild(note("Your Airflow session has expired: reload the page to log in again.", "warn"));
      } else {
        b.appendChild(note("Could not load this section: " + err.message, "warn"));
      }
    };
  }

  function showSource(src) {
    if (!src) return;
    var el = document.getElementById("source");
    el.textContent = "Data: " + src.note;
    el.className = "source" + (src.stale ? " stale" : "");
  }

  // ---- Models ------------------------------------------------------------------------------
  function metricSeries(fam, metric) {
    var byModel = {};
    fam.versions.forEach(function (v) {
      if (!(metric in v.metrics)) return;
      (byModel[v.model_name] = byModel[v.model_name] || []).push({
        x: v.created_at, y: v.metrics[metric], highlight: v.was_champion,
        title: v.version_id + (v.is_champion ? " (champion)" : v.was_champion ? " (former champion)" : "") + "\n" + metric + " = " + fmt.num(v.metrics[metric]),
      });
    });
    return Object.keys(byModel).sort().map(function (name) { return { name: name, points: byModel[name] }; });
  }

  function metricChart(fam, metric, title) {
    var c = chartBox(title);
    var select = h("select", { class: "metric-select", "aria-label": "metric" }, fam.metric_names.map(function (m) {
      return h("option", { value: m, text: m, selected: m === metric });
    }));
    function draw() {
      IFCharts.line(c.box, { series: metricSeries(fam, select.value), x: "time", yLabel: select.value, empty: "no versions with this metric" });
    }
    select.addEventListener("change", draw);
    c.wrap.querySelector("figcaption").appendChild(select);
    return { node: c.wrap, draw: draw };
  }

  function renderModels(data) {
    showSource(data.source);
    var b = body("models");
    if (!data.available) return b.appendChild(note(data.message));
    data.families.forEach(function (fam) {
      var card = h("div", { class: "family", "data-family": fam.family }, [h("h3", { text: fam.family })]);
      b.appendChild(card);
      if (!fam.available) return card.appendChild(note(fam.message));
      var ch = fam.champion;
      card.appendChild(h("p", { class: "champion" }, ch
        ? ["Champion ", h("code", { text: ch.version_id }), " (" + ch.model_name + ")", fam.primary_metric ? ", " + fam.primary_metric + " = " + fmt.num(ch.metrics[fam.primary_metric]) : ""]
        : ["No champion yet."]));
      var charts = h("div", { class: "row" });
      card.appendChild(charts);
      var draws = [];
      if (fam.primary_metric) {
        var p = metricChart(fam, fam.primary_metric, "Primary metric ");
        charts.appendChild(p.node);
        draws.push(p.draw);
      }
      if (fam.guard_metrics.length) {
        var g = metricChart(fam, fam.guard_metrics[0], "Guard metric ");
        charts.appendChild(g.node);
        draws.push(g.draw);
      }
      draws.forEach(function (d) { d(); });
      card.appendChild(h("p", { class: "hint", text: "One line per model; rings mark versions that were champion. Hover a point for its version." }));
      card.appendChild(h("h4", { text: "Gate decisions (newest first)" }));
      card.appendChild(fam.decisions.length ? table([
        { label: "decided", render: function (r) { return fmt.time(r.decided_at); } },
        { label: "run", key: "run_id" },
        { label: "challenger", key: "challenger_version" },
        { label: "champion before", key: "champion_version" },
        { label: "promoted", render: function (r) { return badge(r.promoted, "promoted", "kept champion"); } },
        { label: "reason", key: "reason" },
      ], fam.decisions.slice(0, 20), { id: "decisions-" + fam.family }) : note("No gate decisions recorded yet."));
    });
  }

  // ---- Data quality ------------------------------------------------------------------------
  function failuresCell(r) {
    if (!r.failures || !r.failures.length) return "–";
    return h("ul", { class: "failures" }, r.failures.map(function (f) {
      var ex = f.examples && f.examples.length ? " e.g. " + fmt.json(f.examples.slice(0, 3)) : "";
      return h("li", { text: (f.frame ? f.frame + ": " : "") + (f.expectation || "?") + (f.column ? " on " + f.column : "") + ": " + fmt.num(f.failing_count === undefined ? f.failing : f.failing_count, 0) + " failing" + ex });
    }));
  }

  function docsCell(r) {
    if (r.data_docs_url) return h("a", { href: r.data_docs_url, target: "_blank", rel: "noopener", text: "Data Docs" });
    return r.data_docs_path ? h("span", { class: "muted", title: r.data_docs_path, text: "not served" }) : "–";
  }

  function renderQuality(data) {
    var b = body("quality");
    var gates = data.gates;
    b.appendChild(h("h3", { text: "Gate runs" }));
    if (!gates.available) b.appendChild(note(gates.message));
    else if (!gates.gates.length) b.appendChild(note("No gate has run yet."));
    else gates.gates.forEach(function (g) {
      b.appendChild(h("h4", {}, [g.gate + " ", badge(g.last_passed, "last run passed", "last run failed")]));
      b.appendChild(table([
        { label: "checked", render: function (r) { return fmt.time(r.checked_at); } },
        { label: "run", key: "run_id" },
        { label: "result", render: function (r) { return badge(r.passed, "passed", "failed"); } },
        { label: "expectations", key: "n_expectations", num: true },
        { label: "failed", key: "n_failed", num: true },
        { label: "failing expectations", render: failuresCell },
        { label: "docs", render: docsCell },
      ], g.runs));
    });
    var row = h("div", { class: "row" });
    b.appendChild(row);
    var q = data.quarantine;
    var qc = chartBox("Quarantined rows by reason" + (q.available ? " (" + fmt.num(q.total, 0) + " in all)" : ""));
    row.appendChild(qc.wrap);
    if (!q.available) qc.box.appendChild(note(q.message));
    else IFCharts.bars(qc.box, {
      horizontal: true, colorBy: "index", empty: "nothing quarantined",
      bars: q.reasons.map(function (r) { return { label: r.table_name + ": " + r.reason, value: r.n }; }),
    });
    var bt = data.batches;
    var bw = h("div", { class: "chart-wrap" }, [h("figcaption", { text: "Latest ingest batches" })]);
    row.appendChild(bw);
    if (!bt.available) bw.appendChild(note(bt.message));
    else bw.appendChild(table([
      { label: "ingested", render: function (r) { return fmt.time(r.ingested_at); } },
      { label: "table", key: "table_name" },
      { label: "status", key: "status" },
      { label: "rows", key: "rows_total", num: true },
      { label: "accepted", key: "accepted", num: true },
      { label: "quarantined", key: "quarantined", num: true },
    ], bt.batches));
  }

  // ---- Campaigns ---------------------------------------------------------------------------
  function interval(r, lo, hi, digits) {
    if (r[lo] === null || r[lo] === undefined) return "–";
    return "[" + fmt.num(r[lo], digits) + ", " + fmt.num(r[hi], digits) + "]";
  }

  function renderCampaigns(data) {
    var b = body("campaigns");
    if (!data.campaigns.length) return b.appendChild(note("No campaign windows are defined (ml/marketing/campaigns/*.yml)."));
    if (!data.reports.available) b.appendChild(note(data.reports.message));
    data.campaigns.forEach(function (c) {
      var card = h("div", { class: "campaign", "data-campaign": c.campaign }, [h("h3", { text: c.campaign })]);
      b.appendChild(card);
      card.appendChild(h("p", { class: "hint", text: (c.description ? c.description + " " : "") + fmt.time(c.start) + " – " + fmt.time(c.end) + ", holdout " + fmt.pct(c.holdout_share) + ", spend " + (c.spend === null ? "not given" : fmt.num(c.spend, 2)) }));
      renderReport(card, c.report);
      renderCopy(card, c, data.copy);
    });
  }

  function renderReport(card, rep) {
      if (!rep) return card.appendChild(note("No report: no exposed users in both arms, or the window has not begun."));
      var revenue = rep.metrics.filter(function (m) { return m.metric === "revenue"; })[0];
      if (revenue) card.appendChild(h("p", { class: "roas" }, [
        "Incremental revenue " + fmt.num(revenue.incremental, 2),
        revenue.roas === null ? " (no spend given: no ROAS)" : "; ROAS " + fmt.num(revenue.roas, 2) + " " + interval(revenue, "roas_low", "roas_high", 2),
      ]));
      card.appendChild(table([
        { label: "metric", key: "metric" },
        { label: "treated users", key: "treatment_users", num: true },
        { label: "holdout users", key: "holdout_users", num: true },
        { label: "treated per user", render: function (r) { return fmt.num(r.treatment_mean, 4); }, num: true },
        { label: "holdout per user", render: function (r) { return fmt.num(r.holdout_mean, 4); }, num: true },
        { label: "uplift per user", render: function (r) { return fmt.num(r.uplift, 4); }, num: true },
        { label: "95 % interval", render: function (r) { return interval(r, "ci_low", "ci_high", 4); } },
      ], rep.metrics));
      if (rep.variants && rep.variants.length) {
        card.appendChild(h("p", { class: "hint", text: "Each marketing copy variant's treated users against the same holdout:" }));
        card.appendChild(table([
          { label: "copy variant", key: "copy_variant", num: true },
          { label: "metric", key: "metric" },
          { label: "treated users", key: "treatment_users", num: true },
          { label: "uplift per user", render: function (r) { return fmt.num(r.uplift, 4); }, num: true },
          { label: "95 % interval", render: function (r) { return interval(r, "ci_low", "ci_high", 4); } },
        ], rep.variants));
      }
      card.appendChild(h("p", { class: "hint", text: "Reported " + fmt.time(rep.reported_at) + " (run " + rep.run_id + ")." }));
  }

  function renderCopy(card, c, status) {
    var box = h("div", { class: "copy", "data-copy": c.campaign }, [h("h4", { text: "Marketing copy" })]);
    card.appendChild(box);
    if (!status.available) return box.appendChild(note(status.message));
    if (!c.copy.length) return box.appendChild(note("No copy for this campaign: generate_copy writes it while the campaign runs and in the days before it starts."));
    c.copy.forEach(function (a) {
      var reasons = Object.keys(a.reasons).map(function (k) { return k + " " + a.reasons[k]; }).join(", ");
      box.appendChild(h("p", { class: "gate" }, [
        h("strong", { text: a.audience + ": " }),
        "grounding gate passed " + (a.pass_rate === null ? "–" : fmt.pct(a.pass_rate)) + " of " + a.candidates + " candidates",
        reasons ? "; dropped for " + reasons : "",
        a.template_fallbacks ? "; template used for " + a.template_fallbacks + " variant(s)" : "",
      ]));
      box.appendChild(table([
        { label: "variant", key: "variant", num: true },
        { label: "item", key: "item_id" },
        { label: "source", key: "source" },
        { label: "copy", key: "text" },
      ], a.variants));
      box.appendChild(h("p", { class: "hint", text: "Written " + fmt.time(a.written_at) + " (run " + a.run_id + ") by " + a.model + "." }));
    });
  }

  // ---- Exploration -------------------------------------------------------------------------
  function renderExploration(data) {
    var b = body("exploration");
    var pol = data.policy;
    var budget = pol.budget && pol.budget.value !== null ? fmt.json(pol.budget.value) + " (" + pol.budget.param + ", " + pol.budget.from + ")" : "not configured";
    b.appendChild(h("dl", { class: "facts" }, [
      h("dt", { text: "Serving policy" }), h("dd", { id: "current-policy", text: pol.current || "–" }),
      h("dt", { text: "Policy champion" }), h("dd", { text: pol.champion ? pol.champion.version_id + " (" + pol.champion.model_name + ")" : "none yet" }),
      h("dt", { text: "Exploration budget" }), h("dd", { text: budget }),
    ]));
    if (pol.serving.length) {
      b.appendChild(table([
        { label: "policy", key: "policy" },
        { label: "users", key: "users", num: true },
        { label: "slots", key: "slots", num: true },
        { label: "exploration slots", render: function (r) { return fmt.pct(r.exploration_share); }, num: true },
        { label: "mean propensity", render: function (r) { return fmt.num(r.mean_propensity, 3); }, num: true },
        { label: "min propensity", render: function (r) { return fmt.num(r.min_propensity, 3); }, num: true },
      ], pol.serving));
    } else if (pol.message) b.appendChild(note(pol.message));

    var row = h("div", { class: "row" });
    b.appendChild(row);
    var est = data.estimates;
    var oc = chartBox("Off-policy estimates (95 % CI) ");
    row.appendChild(oc.wrap);
    if (!est.available) oc.box.appendChild(note(est.message));
    else {
      var estimators = [];
      est.current.forEach(function (r) { if (estimators.indexOf(r.estimator) < 0) estimators.push(r.estimator); });
      var sel = h("select", { class: "metric-select", "aria-label": "estimator" }, estimators.map(function (e) { return h("option", { value: e, text: e }); }));
      if (estimators.length) oc.wrap.querySelector("figcaption").appendChild(sel);
      var drawOpe = function () {
        var reward = est.current.length && est.current[0].reward ? est.current[0].reward : "click";
        IFCharts.bars(oc.box, {
          yLabel: "estimated " + reward + " per slot", colorBy: "index", empty: "no current estimates",
          bars: est.current.filter(function (r) { return r.estimator === sel.value; }).map(function (r) {
            return { label: r.policy + (r.is_serving ? " ★" : ""), value: r.estimate, lo: r.ci_low, hi: r.ci_high, highlight: r.is_serving,
              title: r.policy + " (" + r.estimator + "): " + fmt.num(r.estimate) + " [" + fmt.num(r.ci_low) + ", " + fmt.num(r.ci_high) + "], n = " + fmt.num(r.n, 0) };
          }),
        });
      };
      sel.addEventListener("change", drawOpe);
      drawOpe();
    }
    var ctr = data.ctr;
    var cc = chartBox("Click-through per day: exploration vs exploitation (95 % CI)");
    var sc = chartBox("Share of exploration impressions per day");
    row.appendChild(cc.wrap);
    row.appendChild(sc.wrap);
    if (!ctr.available) {
      cc.box.appendChild(note(ctr.message));
      sc.box.appendChild(note(ctr.message));
    } else {
      var arms = {};
      ctr.days.forEach(function (d) {
        var arm = ARM_NAMES[d.arm] || d.arm;
        (arms[arm] = arms[arm] || []).push({ x: d.day, y: d.ctr, lo: d.ci_low, hi: d.ci_high, title: arm + " " + d.day + ": " + fmt.pct(d.ctr) + " of " + d.impressions });
      });
      IFCharts.line(cc.box, { x: "time", yLabel: "CTR", yMin: 0, legend: true, empty: ctr.message, series: Object.keys(arms).sort().map(function (a) { return { name: a, points: arms[a] }; }) });
      IFCharts.line(sc.box, { x: "time", yLabel: "share", yMin: 0, empty: ctr.share_message || ctr.message, series: [{ name: "exploration share", points: ctr.share.map(function (s) { return { x: s.day, y: s.share, title: s.day + ": " + fmt.pct(s.share) }; }) }] });
      b.appendChild(h("p", { class: "hint", text: ctr.note }));
    }
  }

  // ---- User lookup -------------------------------------------------------------------------
  function renderUser(data) {
    var b = body("user");
    b.setAttribute("data-user", data.user_id);
    b.appendChild(h("h3", {}, ["User ", h("code", { id: "user-shown", text: data.user_id })]));
    var row = h("div", { class: "row" });
    b.appendChild(row);
    var prof = data.profile;
    var known = chartBox("Known interests (weight)");
    var cand = chartBox("Candidate interests to explore (weight)");
    row.appendChild(known.wrap);
    row.appendChild(cand.wrap);
    if (!prof.available) {
      known.box.appendChild(note(prof.message));
      cand.box.appendChild(note(prof.message));
    } else {
      IFCharts.bars(known.box, { horizontal: true, empty: "no known interests", bars: prof.known.slice(0, 12).map(function (t) {
        return { label: t.tag, value: t.weight, title: t.tag + ": weight " + fmt.num(t.weight) + ", " + fmt.num(t.evidence_count, 0) + " events, last " + fmt.time(t.last_seen) };
      }) });
      IFCharts.bars(cand.box, { horizontal: true, empty: "no candidate interests", bars: prof.candidate.slice(0, 12).map(function (t) {
        return { label: t.tag, value: t.weight, color: "#e8710a", title: t.tag + ": " + (t.candidate_reason || "candidate") + (t.uncertainty !== undefined ? ", uncertainty " + fmt.num(t.uncertainty) : "") };
      }) });
    }
    var beh = data.behaviour;
    var bc = chartBox("Behaviour by event type");
    row.appendChild(bc.wrap);
    if (!beh.available) bc.box.appendChild(note(beh.message));
    else IFCharts.bars(bc.box, { colorBy: "index", yLabel: "events", bars: beh.counts.map(function (c) { return { label: c.event_type, value: c.n, title: c.event_type + ": " + c.n + " (last " + fmt.time(c.last_at) + ")" }; }) });

    var recs = data.recommendations;
    b.appendChild(h("h4", { text: "Current recommendations" + (recs.published ? " (published " + fmt.time(recs.published.created_at) + ", version " + recs.published.version + ")" : "") }));
    if (!recs.available || !recs.items.length) b.appendChild(note(recs.message, "warn"));
    else b.appendChild(table([
      { label: "#", key: "rank", num: true },
      { label: "item", render: function (r) { return h("span", {}, [r.title ? r.title + " " : "", h("code", { class: "item-id", text: r.item_id })]); } },
      { label: "category", key: "category_path" },
      { label: "score", render: function (r) { return fmt.num(r.score, 3); }, num: true },
      { label: "why", key: "reason" },
      { label: "reason tag", key: "reason_tag" },
      { label: "slot", render: function (r) { return r.is_exploration ? h("span", { class: "badge explore", text: "exploration" }) : h("span", { class: "badge", text: "exploitation" }); } },
      { label: "propensity", render: function (r) { return fmt.num(r.propensity, 3); }, num: true },
      { label: "policy", key: "policy" },
    ], recs.items, { id: "recs", key: "item_id" }));

    if (prof.available && (prof.known.length || prof.candidate.length)) {
      b.appendChild(h("h4", { text: "Interest profile" + (prof.as_of ? " as of " + fmt.time(prof.as_of) : "") }));
      b.appendChild(table([
        { label: "tag", key: "tag" },
        { label: "status", key: "status" },
        { label: "weight", render: function (r) { return fmt.num(r.weight, 3); }, num: true },
        { label: "evidence", key: "evidence_count", num: true },
        { label: "uncertainty", render: function (r) { return fmt.num(r.uncertainty, 3); }, num: true },
        { label: "last seen", render: function (r) { return fmt.time(r.last_seen); } },
        { label: "why a candidate", key: "candidate_reason" },
      ], prof.known.concat(prof.candidate), { id: "profile" }));
    }
    if (beh.available) {
      b.appendChild(h("h4", { text: "Recent behaviour" }));
      b.appendChild(beh.recent.length ? table([
        { label: "when", render: function (r) { return fmt.time(r.event_at); } },
        { label: "event", key: "event_type" },
        { label: "item", render: function (r) { return r.item_id ? h("span", {}, [r.title ? r.title + " " : "", h("code", { text: r.item_id })]) : "–"; } },
        { label: "category", key: "category_path" },
      ], beh.recent, { id: "recent" }) : note("No events."));
    }
    var rev = data.reviews;
    if (rev && rev.available && rev.items.length) {
      b.appendChild(h("h4", { text: "Reviews as the review model reads them" }));
      b.appendChild(table([
        { label: "when", render: function (r) { return fmt.time(r.reviewed_at); } },
        { label: "item", render: function (r) { return h("span", {}, [r.title ? r.title + " " : "", h("code", { text: r.item_id })]); } },
        { label: "stars", key: "rating", num: true },
        { label: "read as", render: function (r) { return h("span", { class: "badge" + (r.label === "negative" ? " warn" : ""), text: r.label }); } },
        { label: "sentiment", render: function (r) { return fmt.num(r.sentiment, 2); }, num: true },
        { label: "aspects", render: function (r) {
          if (!r.aspects || !r.aspects.length) { return "–"; }
          return h("span", {}, r.aspects.map(function (a) {
            return h("span", { class: "badge" + (a.sentiment < 0 ? " warn" : ""), text: a.aspect + " " + fmt.num(a.sentiment, 2) });
          }));
        } },
        { label: "text", key: "review_text" },
      ], rev.items, { id: "reviews" }));
    }
  }

  function lookup(userId) {
    var b = body("user");
    if (!USER_ID.test(userId)) {
      b.appendChild(note("“" + userId + "” is not a valid user id: 1 to 64 letters, digits and _ . : @ -", "warn"));
      return Promise.resolve();
    }
    b.setAttribute("data-state", "loading");
    b.appendChild(note("Loading " + userId + "…"));
    var url = new URL(window.location.href);
    url.searchParams.set("user", userId);
    window.history.replaceState(null, "", url.toString());
    return api("api/users/" + encodeURIComponent(userId) + "?k=10&recent=15").then(renderUser, function (err) {
      var bb = body("user");
      bb.setAttribute("data-state", err.status === 404 ? "not-found" : "error");
      bb.appendChild(note(err.status === 404 ? "No such user: " + userId : "Lookup failed: " + err.message, "warn"));
    }).then(function () {
      document.getElementById("user").scrollIntoView({ block: "start" });
    });
  }

  function suggest(prefix) {
    return api("api/users?limit=20&prefix=" + encodeURIComponent(prefix)).then(function (d) {
      var list = document.getElementById("user-options");
      list.textContent = "";
      (d.users || []).forEach(function (u) { list.appendChild(h("option", { value: u })); });
    }, function () {});
  }

  // ---- the shopping assistant --------------------------------------------------------------
  function ask(userId, question) {
    var b = body("assistant");
    if (!USER_ID.test(userId)) {
      b.appendChild(note("Type a valid user id in the box at the top first.", "warn"));
      return Promise.resolve();
    }
    b.setAttribute("data-state", "loading");
    b.appendChild(note("Asking…"));
    return api("api/assistant", { user_id: userId, question: question, k: 5 }).then(function (a) {
      var bb = body("assistant");
      bb.setAttribute("data-state", "answered");
      if (a.understood && a.understood.length) bb.appendChild(note("Understood: " + a.understood.join(", ")));
      if (a.message) bb.appendChild(note(a.message));
      bb.appendChild(a.items && a.items.length ? table([
        { label: "item", render: function (r) { return h("span", {}, [r.title + " ", h("code", { text: r.item_id })]); } },
        { label: "price", render: function (r) { return fmt.num(r.price, 2); }, num: true },
        { label: "why", key: "why" },
      ], a.items, { id: "assistant-items", key: "item_id" }) : note("No item answers this question.", "warn"));
    }, function (err) {
      var bb = body("assistant");
      bb.setAttribute("data-state", "refused");
      bb.appendChild(note(err.message, "warn"));
    });
  }

  // ---- start -------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("lookup-form");
    var input = document.getElementById("user-input");
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      lookup(input.value.trim());
    });
    var timer = null;
    input.addEventListener("input", function () {
      clearTimeout(timer);
      var v = input.value.trim();
      if (/^[A-Za-z0-9_.:@-]{0,64}$/.test(v)) timer = setTimeout(function () { suggest(v); }, 200);
    });
    document.getElementById("assistant-form").addEventListener("submit", function (e) {
      e.preventDefault();
      ask(input.value.trim(), document.getElementById("assistant-input").value);
    });
    api("api/status").then(function (s) { showSource(s.source); }, function () {});
    api("api/models").then(renderModels, failed("models"));
    api("api/quality").then(renderQuality, failed("quality"));
    api("api/exploration").then(renderExploration, failed("exploration"));
    api("api/campaigns").then(renderCampaigns, failed("campaigns"));
    suggest("");
    var wanted = new URL(window.location.href).searchParams.get("user");
    if (wanted) {
      input.value = wanted;
      lookup(wanted);
    }
  });
})();
