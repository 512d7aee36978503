/* IFCharts: a small SVG chart library for the Interestflow page (no dependencies, no CDN).
 *
 * Charts are drawn right after the current script task (so they get their final width) and
 * again when the window is resized.
 *
 *   IFCharts.line(container, {series: [{name, points: [{x, y, lo, hi, highlight, title}]}],
 *                             x: "time" | "linear", yLabel, yMin, yMax, height, legend})
 *   IFCharts.bars(container, {bars: [{label, value, lo, hi, highlight, title}],
 *                             yLabel, horizontal, height})
 *
 * x for "time" is anything Date() accepts (ISO strings); lo/hi draw an error bar; highlight
 * draws a ring (line) or an outlined bar. Elements carry classes if-series, if-point,
 * if-errorbar, if-bar, if-axis so tests and CSS can find them. Charts redraw on resize.
 */
(function (global) {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var PALETTE = ["#017cee", "#e8710a", "#12a150", "#9334e6", "#d93025", "#00897b", "#c2185b", "#5f6368"];
  var MARGIN = { top: 14, right: 16, bottom: 34, left: 56 };
  var drawn = [];

  function el(tag, attrs, parent, text) {
    var node = document.createElementNS(NS, tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (attrs[k] !== undefined && attrs[k] !== null) node.setAttribute(k, attrs[k]);
    });
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function finite(v) {
    return typeof v === "number" && isFinite(v);
  }

  function scale(d0, d1, r0, r1) {
    var span = d1 - d0 || 1;
    return function (v) {
      return r0 + ((v - d0) / span) * (r1 - r0);
    };
  }

  function niceStep(span, count) {
    var raw = span / Math.max(count, 1);
    var mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var norm = raw / mag;
    var step = norm >= 5 ? 10 : norm >= 2 ? 5 : norm >= 1 ? 2 : 1;
    return step * mag;
  }

  function linearTicks(min, max, count) {
    if (min === max) {
      var pad = Math.abs(min) * 0.1 || 1;
      min -= pad;
      max += pad;
    }
    var step = niceStep(max - min, count);
    var lo = Math.floor(min / step) * step;
    var hi = Math.ceil(max / step) * step;
    var ticks = [];
    for (var v = lo; v <= hi + step / 2; v += step) ticks.push(Math.abs(v) < step / 1e6 ? 0 : v);
    return { min: lo, max: hi, ticks: ticks, step: step };
  }

  var SEC = 1000, MIN = 60 * SEC, HOUR = 60 * MIN, DAY = 24 * HOUR;
  var TIME_STEPS = [SEC, 5 * SEC, 15 * SEC, 30 * SEC, MIN, 5 * MIN, 15 * MIN, 30 * MIN, HOUR, 3 * HOUR,
    6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY, 91 * DAY, 182 * DAY, 365 * DAY];

  function timeTicks(min, max, count) {
    if (min === max) {
      min -= 30 * MIN;
      max += 30 * MIN;
    }
    var span = max - min;
    var step = TIME_STEPS[TIME_STEPS.length - 1];
    for (var i = 0; i < TIME_STEPS.length; i++) {
      if (span / TIME_STEPS[i] <= count) {
        step = TIME_STEPS[i];
        break;
      }
    }
    var ticks = [];
    for (var t = Math.ceil(min / step) * step; t <= max; t += step) ticks.push(t);
    return { min: min, max: max, ticks: ticks, step: step };
  }

  function pad2(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function timeLabel(ms, step) {
    var d = new Date(ms);
    var day = d.getUTCFullYear() + "-" + pad2(d.getUTCMonth() + 1) + "-" + pad2(d.getUTCDate());
    if (step >= DAY) return day;
    var hm = pad2(d.getUTCHours()) + ":" + pad2(d.getUTCMinutes());
    if (step >= MIN) return step >= 12 * HOUR ? day : day.slice(5) + " " + hm;
    return hm + ":" + pad2(d.getUTCSeconds());
  }

  function numLabel(v, step) {
    if (!finite(v)) return "";
    var digits = step >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(step)));
    if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(0) + "k";
    return v.toFixed(digits);
  }

  function frame(container, height) {
    container.textContent = "";
    var width = Math.max(container.clientWidth || 0, 280);
    var svg = el("svg", {
      class: "if-chart", width: width, height: height, viewBox: "0 0 " + width + " " + height, role: "img",
    }, container);
    return { svg: svg, width: width, height: height };
  }

  function empty(container, message) {
    container.textContent = "";
    var p = document.createElement("p");
    p.className = "if-chart-empty";
    p.textContent = message || "no data yet";
    container.appendChild(p);
  }

  function yAxis(g, ticks, y, x0, x1, label, height) {
    var axis = el("g", { class: "if-axis if-axis-y" }, g);
    ticks.ticks.forEach(function (t) {
      el("line", { class: "if-grid", x1: x0, x2: x1, y1: y(t), y2: y(t) }, axis);
      el("text", { x: x0 - 6, y: y(t) + 4, "text-anchor": "end" }, axis, numLabel(t, ticks.step));
    });
    if (label) {
      el("text", {
        class: "if-axis-label", transform: "translate(12," + (MARGIN.top + (height - MARGIN.top - MARGIN.bottom) / 2) + ") rotate(-90)",
        "text-anchor": "middle",
      }, axis, label);
    }
  }

  function errorBar(g, x, yLo, yHi, color, cap) {
    var bar = el("g", { class: "if-errorbar" }, g);
    el("line", { x1: x, x2: x, y1: yLo, y2: yHi, stroke: color }, bar);
    el("line", { x1: x - cap, x2: x + cap, y1: yLo, y2: yLo, stroke: color }, bar);
    el("line", { x1: x - cap, x2: x + cap, y1: yHi, y2: yHi, stroke: color }, bar);
    return bar;
  }

  function legend(container, names, always) {
    if (names.length < 2 && !always) return;
    var box = document.createElement("div");
    box.className = "if-legend";
    names.forEach(function (name, i) {
      var item = document.createElement("span");
      var sw = document.createElement("i");
      sw.style.background = PALETTE[i % PALETTE.length];
      item.appendChild(sw);
      item.appendChild(document.createTextNode(name));
      box.appendChild(item);
    });
    container.appendChild(box);
  }

  function line(container, opts) {
    var height = opts.height || 220;
    var isTime = (opts.x || "time") === "time";
    var series = (opts.series || []).map(function (s) {
      return {
        name: s.name,
        color: s.color,
        points: (s.points || []).map(function (p) {
          return Object.assign({}, p, { xv: isTime ? new Date(p.x).getTime() : Number(p.x) });
        }).filter(function (p) { return finite(p.xv) && finite(p.y); })
          .sort(function (a, b) { return a.xv - b.xv; }),
      };
    }).filter(function (s) { return s.points.length; });
    if (!series.length) return empty(container, opts.empty);
    var xs = [], ys = [];
    series.forEach(function (s) {
      s.points.forEach(function (p) {
        xs.push(p.xv);
        ys.push(p.y);
        if (finite(p.lo)) ys.push(p.lo);
        if (finite(p.hi)) ys.push(p.hi);
      });
    });
    var f = frame(container, height);
    var x0 = MARGIN.left, x1 = f.width - MARGIN.right, y0 = height - MARGIN.bottom, y1 = MARGIN.top;
    var xt = isTime ? timeTicks(Math.min.apply(null, xs), Math.max.apply(null, xs), Math.max(2, Math.floor((x1 - x0) / 110)))
      : linearTicks(Math.min.apply(null, xs), Math.max.apply(null, xs), 6);
    var yMin = finite(opts.yMin) ? Math.min(opts.yMin, Math.min.apply(null, ys)) : Math.min.apply(null, ys);
    var yMax = finite(opts.yMax) ? Math.max(opts.yMax, Math.max.apply(null, ys)) : Math.max.apply(null, ys);
    var yt = linearTicks(yMin, yMax, 5);
    var x = scale(xt.min, xt.max, x0 + 8, x1 - 8);
    var y = scale(yt.min, yt.max, y0, y1);
    yAxis(f.svg, yt, y, x0, x1, opts.yLabel, height);
    var xa = el("g", { class: "if-axis if-axis-x" }, f.svg);
    el("line", { x1: x0, x2: x1, y1: y0, y2: y0 }, xa);
    xt.ticks.forEach(function (t) {
      el("text", { x: x(t), y: y0 + 18, "text-anchor": "middle" }, xa, isTime ? timeLabel(t, xt.step) : numLabel(t, xt.step));
    });
    var withBars = series.some(function (s) { return s.points.some(function (p) { return finite(p.lo) && finite(p.hi); }); });
    series.forEach(function (s, i) {
      var color = s.color || PALETTE[i % PALETTE.length];
      // series with error bars are dodged sideways a little so their bars do not hide each other
      var dx = withBars ? (i - (series.length - 1) / 2) * 6 : 0;
      var px = function (p) { return x(p.xv) + dx; };
      var g = el("g", { class: "if-series-group", "data-series": s.name }, f.svg);
      var d = s.points.map(function (p, j) { return (j ? "L" : "M") + px(p).toFixed(1) + "," + y(p.y).toFixed(1); }).join("");
      el("path", { class: "if-series", d: d, stroke: color, fill: "none" }, g);
      s.points.forEach(function (p) {
        if (finite(p.lo) && finite(p.hi)) errorBar(g, px(p), y(p.lo), y(p.hi), color, 3);
        var c = el("circle", { class: "if-point" + (p.highlight ? " if-highlight" : ""), cx: px(p), cy: y(p.y), r: p.highlight ? 5.5 : 3.5, fill: p.highlight ? "#fff" : color, stroke: color }, g);
        el("title", {}, c, p.title || (s.name + ": " + p.y));
      });
    });
    legend(container, series.map(function (s) { return s.name; }), opts.legend);
    return f.svg;
  }

  function bars(container, opts) {
    var data = (opts.bars || []).filter(function (b) { return finite(b.value); });
    if (!data.length) return empty(container, opts.empty);
    if (opts.horizontal) return hbars(container, data, opts);
    var height = opts.height || 220;
    var f = frame(container, height);
    var x0 = MARGIN.left, x1 = f.width - MARGIN.right, y0 = height - MARGIN.bottom, y1 = MARGIN.top;
    var vals = [0];
    data.forEach(function (b) {
      vals.push(b.value);
      if (finite(b.lo)) vals.push(b.lo);
      if (finite(b.hi)) vals.push(b.hi);
    });
    var yt = linearTicks(Math.min.apply(null, vals), Math.max.apply(null, vals), 5);
    var y = scale(yt.min, yt.max, y0, y1);
    yAxis(f.svg, yt, y, x0, x1, opts.yLabel, height);
    var band = (x1 - x0) / data.length;
    var w = Math.max(4, Math.min(60, band * 0.6));
    var xa = el("g", { class: "if-axis if-axis-x" }, f.svg);
    el("line", { x1: x0, x2: x1, y1: y(0), y2: y(0) }, xa);
    data.forEach(function (b, i) {
      var cx = x0 + band * (i + 0.5);
      var color = b.color || PALETTE[(opts.colorBy === "index" ? i : 0) % PALETTE.length];
      var top = Math.min(y(b.value), y(0)), h = Math.abs(y(b.value) - y(0));
      var r = el("rect", { class: "if-bar" + (b.highlight ? " if-highlight" : ""), x: cx - w / 2, y: top, width: w, height: Math.max(h, 1), fill: color }, f.svg);
      el("title", {}, r, b.title || (b.label + ": " + b.value));
      if (finite(b.lo) && finite(b.hi)) errorBar(f.svg, cx, y(b.lo), y(b.hi), "#202124", Math.min(8, w / 3));
      var label = String(b.label);
      var maxChars = Math.max(4, Math.floor(band / 6.5));
      el("text", { x: cx, y: y0 + 18, "text-anchor": "middle" }, xa, label.length > maxChars ? label.slice(0, maxChars - 1) + "…" : label);
    });
    return f.svg;
  }

  function hbars(container, data, opts) {
    var rowH = 22;
    var labelW = Math.min(220, Math.max(80, Math.max.apply(null, data.map(function (b) { return String(b.label).length; })) * 7));
    var height = MARGIN.top + MARGIN.bottom + rowH * data.length;
    var f = frame(container, height);
    var x0 = labelW + 8, x1 = f.width - MARGIN.right - 40;
    var vals = [0];
    data.forEach(function (b) { vals.push(b.value); if (finite(b.hi)) vals.push(b.hi); });
    var xt = linearTicks(Math.min.apply(null, vals), Math.max.apply(null, vals), 4);
    var x = scale(xt.min, xt.max, x0, x1);
    var xa = el("g", { class: "if-axis if-axis-x" }, f.svg);
    xt.ticks.forEach(function (t) {
      el("line", { class: "if-grid", x1: x(t), x2: x(t), y1: MARGIN.top, y2: height - MARGIN.bottom }, xa);
      el("text", { x: x(t), y: height - MARGIN.bottom + 16, "text-anchor": "middle" }, xa, numLabel(t, xt.step));
    });
    data.forEach(function (b, i) {
      var cy = MARGIN.top + rowH * i + rowH / 2;
      var color = b.color || PALETTE[(opts.colorBy === "index" ? i : 0) % PALETTE.length];
      el("text", { class: "if-bar-label", x: x0 - 6, y: cy + 4, "text-anchor": "end" }, f.svg, b.label);
      var r = el("rect", { class: "if-bar" + (b.highlight ? " if-highlight" : ""), x: Math.min(x(0), x(b.value)), y: cy - rowH * 0.35, width: Math.max(1, Math.abs(x(b.value) - x(0))), height: rowH * 0.7, fill: color }, f.svg);
      el("title", {}, r, b.title || (b.label + ": " + b.value));
      el("text", { class: "if-bar-value", x: Math.max(x(0), x(b.value)) + 4, y: cy + 4 }, f.svg, Number.isInteger(b.value) ? String(b.value) : numLabel(b.value, xt.step / 10));
    });
    return f.svg;
  }

  // Draw after the caller has finished building the page, so a chart's width is the width its
  // container ends up with (not the width it had before its siblings were added).
  function remember(fn, container, opts) {
    drawn = drawn.filter(function (d) { return d.container !== container && document.body.contains(d.container); });
    drawn.push({ fn: fn, container: container, opts: opts });
    setTimeout(function () { fn(container, opts); }, 0);
  }

  var resizeTimer = null;
  global.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      drawn.forEach(function (d) { d.fn(d.container, d.opts); });
    }, 150);
  });

  global.IFCharts = {
    line: function (container, opts) { return remember(line, container, opts); },
    bars: function (container, opts) { return remember(bars, container, opts); },
    palette: PALETTE,
  };
})(window);
