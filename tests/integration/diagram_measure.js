// Measures the topology diagrams of a lab page as Chromium lays them out (tests/integration/test_docs_site.py
// puts this script into a copy of the page). It opens the step diagrams' <details> (and with
// ?closed=1 closes them again after measuring, for a screenshot), then writes one JSON report into
// <pre id="hl-measure">: per diagram its place on the page, size and scale, the smallest text in CSS pixels, every
// problem found:
//   overlap   two pieces of text whose boxes intersect
//   outside   a piece of text not inside its box (a node's shape, a frame), or beyond the drawing
//   clipped   the drawing wider than the column it sits in
//   contrast  text whose colour is too close to what lies behind it (WCAG ratio under 4.5)
(() => {
  const params = new URLSearchParams(location.search);
  const SLACK = 1.0;  // px: anti-aliasing and rounding

  const rgb = (css) => {
    const m = css.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const [r, g, b, a] = m[1].split(',').map(Number);
    return {r, g, b, a: a === undefined ? 1 : a};
  };
  const lum = ({r, g, b}) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const over = (top, bottom) => ({  // `top` (maybe translucent) drawn on an opaque `bottom`
    r: top.r * top.a + bottom.r * (1 - top.a), g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a), a: 1});
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const inside = (a, b) => a.left >= b.left - SLACK && a.right <= b.right + SLACK && a.top >= b.top - SLACK && a.bottom <= b.bottom + SLACK;
  const meets = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > SLACK &&
                          Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > SLACK;
  const filled = (el) => { const c = rgb(getComputedStyle(el).fill); return c && c.a > 0 ? c : null; };

  function pageBackground() {
    for (let el = document.querySelector('.md-content'); el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c && c.a > 0) return c;
    }
    return {r: 255, g: 255, b: 255, a: 1};
  }

  function measure(svg, page) {
    const box = svg.getBoundingClientRect();
    const view = svg.viewBox.baseVal;
    const column = svg.closest('details') || svg.closest('.md-content__inner') || document.body;
    const col = column.getBoundingClientRect();
    const problems = [];
    const texts = [...svg.querySelectorAll('text')].filter((t) => t.textContent.trim());
    const rects = texts.map((t) => t.getBoundingClientRect());
    const name = (t) => JSON.stringify(t.textContent.trim());
    let smallest = Infinity;
    if (box.right > col.right + SLACK || box.left < col.left - SLACK) {
      problems.push(`clipped: the drawing spans ${box.left.toFixed(0)}..${box.right.toFixed(0)} px, its column ${col.left.toFixed(0)}..${col.right.toFixed(0)}`);
    }
    texts.forEach((t, i) => {
      const r = rects[i];
      smallest = Math.min(smallest, parseFloat(getComputedStyle(t).fontSize) * box.width / view.width);
      if (!inside(r, box)) problems.push(`outside: ${name(t)} is beyond the drawing`);
      const group = t.closest('g.node, g.cluster, g.edge');
      let behind = page;
      if (group && !group.classList.contains('edge')) {
        const shapes = [...group.querySelectorAll('polygon, path, ellipse')];
        const outline = shapes.map((s) => s.getBoundingClientRect());
        const whole = outline.reduce((u, s) => ({left: Math.min(u.left, s.left), top: Math.min(u.top, s.top),
          right: Math.max(u.right, s.right), bottom: Math.max(u.bottom, s.bottom)}), {left: Infinity, top: Infinity, right: -Infinity, bottom: -Infinity});
        if (shapes.length && !inside(r, whole)) problems.push(`outside: ${name(t)} sticks out of its box`);
        // what is behind the text: the smallest filled shape of its group under the text's middle
        const mx = (r.left + r.right) / 2, my = (r.top + r.bottom) / 2;
        const under = shapes.map((s, k) => [s, outline[k]])
          .filter(([s, o]) => filled(s) && o.left <= mx && mx <= o.right && o.top <= my && my <= o.bottom)
          .sort(([, a], [, b]) => (a.width * a.height) - (b.width * b.height));
        for (const [s] of under.reverse()) behind = over(filled(s), behind);
      } else if (group) {
        const halo = rgb(getComputedStyle(t).stroke);
        if (halo && halo.a > 0) behind = over(halo, page);
      }
      const colour = rgb(getComputedStyle(t).fill);
      if (colour) {
        const contrast = ratio(over(colour, behind), behind);
        if (contrast < 4.5) problems.push(`contrast: ${name(t)} ${contrast.toFixed(2)}:1 (${getComputedStyle(t).fill} on rgb(${behind.r.toFixed(0)}, ${behind.g.toFixed(0)}, ${behind.b.toFixed(0)}))`);
      }
    });
    for (let i = 0; i < texts.length; i++) {
      for (let j = i + 1; j < texts.length; j++) {
        if (meets(rects[i], rects[j])) problems.push(`overlap: ${name(texts[i])} and ${name(texts[j])}`);
      }
    }
    return {id: svg.querySelector('g.graph') ? svg.querySelector('g.graph').id : '', width: box.width, height: box.height,
            left: box.left + scrollX, top: box.top + scrollY,
            scale: box.width / view.width, smallest_px: smallest, texts: texts.map((t) => t.textContent.trim()), problems};
  }

  function run() {
    document.querySelectorAll('details.hl-step-diagram').forEach((d) => { d.open = true; });
    const page = pageBackground();
    const report = {scheme: document.body.getAttribute('data-md-color-scheme'),
                    page: `rgb(${page.r}, ${page.g}, ${page.b})`,
                    diagrams: [...document.querySelectorAll('svg.hl-topo')].map((svg) => measure(svg, page))};
    if (params.get('closed')) {  // for a screenshot: the page as a reader first sees it
      document.querySelectorAll('details.hl-step-diagram').forEach((d) => { d.open = false; });
    }
    const pre = document.createElement('pre');
    pre.id = 'hl-measure';
    pre.textContent = JSON.stringify(report);
    document.body.appendChild(pre);
  }
  window.addEventListener('load', () => setTimeout(run, 100));
})();
