"""The page's stylesheet, inlined so report.html is one file that works offline."""

CSS = """
:root {
  --ink: #0f172a; --ink-2: #334155; --muted: #64748b; --line: #e2e8f0; --bg: #f8fafc; --panel: #fff;
  --accent: #4f46e5; --accent-soft: #eef2ff; --good: #16a34a; --bad: #dc2626;
  color-scheme: light;
}
* { box-sizing: border-box; }
html { scroll-behavior: smooth; }
body {
  margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  -webkit-font-smoothing: antialiased;
}
.layout { display: grid; grid-template-columns: 220px minmax(0, 1fr); gap: 32px; max-width: 1280px;
  margin: 0 auto; padding: 32px 28px 64px; }
nav.toc { position: sticky; top: 24px; align-self: start; font-size: 13px; }
nav.toc .toc-title { text-transform: uppercase; letter-spacing: .08em; font-size: 11px; color: var(--muted);
  font-weight: 600; margin: 0 0 10px 12px; }
nav.toc ol { list-style: none; margin: 0; padding: 0; counter-reset: toc; }
nav.toc li a { display: block; padding: 6px 12px; border-radius: 8px; color: var(--ink-2); text-decoration: none;
  border-left: 2px solid transparent; }
nav.toc li a:hover { background: var(--accent-soft); color: var(--accent); border-left-color: var(--accent); }
main { min-width: 0; }
header.run { margin-bottom: 24px; }
header.run .eyebrow { color: var(--accent); font-weight: 600; font-size: 12px; letter-spacing: .08em;
  text-transform: uppercase; }
header.run h1 { font-size: 28px; line-height: 1.2; margin: 4px 0 6px; letter-spacing: -.01em; }
header.run .meta { color: var(--muted); font-size: 13px; }
header.run .meta code { background: #f1f5f9; padding: 1px 6px; border-radius: 6px; color: var(--ink-2); }
.stats { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; margin: 20px 0 8px; }
.stat { background: var(--panel); border: 1px solid var(--line); border-radius: 12px; padding: 14px 16px; }
.stat .value { font-size: 22px; font-weight: 650; font-variant-numeric: tabular-nums; letter-spacing: -.01em; }
.stat .label { color: var(--muted); font-size: 12px; }
section.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 16px; padding: 22px 24px;
  margin: 0 0 20px; box-shadow: 0 1px 2px rgba(15, 23, 42, .04); scroll-margin-top: 16px; }
section.panel > h2 { font-size: 18px; margin: 0 0 14px; letter-spacing: -.005em; }
section.panel h3 { font-size: 14px; margin: 22px 0 8px; color: var(--ink-2); }
section.panel h3:first-of-type { margin-top: 4px; }
img.chart { display: block; max-width: 100%; height: auto; margin: 6px 0 10px; }
.caption { color: var(--muted); font-size: 12.5px; margin: 4px 0 14px; }
.note { background: #fffbeb; border: 1px solid #fde68a; color: #92400e; padding: 8px 12px; border-radius: 8px;
  font-size: 13px; }
.note.bad, .bad { color: var(--bad); }
.note.bad { background: #fef2f2; border-color: #fecaca; }
.muted { color: var(--muted); }
.table-wrap { overflow-x: auto; margin: 6px 0 12px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th { text-align: left; font-weight: 600; color: var(--muted); font-size: 11.5px; text-transform: uppercase;
  letter-spacing: .04em; border-bottom: 1px solid var(--line); padding: 8px 10px; white-space: nowrap; }
td { border-bottom: 1px solid #f1f5f9; padding: 8px 10px; vertical-align: top; }
tbody tr:hover td { background: #f8fafc; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.compact td, table.compact th { padding: 5px 10px; }
.badge { --badge: var(--accent); display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 11.5px;
  font-weight: 600; line-height: 18px; white-space: nowrap; color: var(--badge);
  background: color-mix(in srgb, var(--badge) 12%, white); border: 1px solid color-mix(in srgb, var(--badge) 30%, white); }
.strip { border: 1px solid var(--line); border-radius: 12px; padding: 12px 14px; margin: 0 0 12px; }
.strip-head { font-size: 12px; color: var(--muted); font-weight: 600; margin-bottom: 8px; }
.tiles { display: flex; gap: 10px; overflow-x: auto; align-items: flex-start; }
figure.tile { margin: 0; width: 112px; flex: none; padding: 6px; border-radius: 10px; border: 2px solid transparent; }
figure.tile.survivor { border-color: var(--good); background: #f0fdf4; }
figure.tile:not(.survivor) img.thumb { opacity: .8; }
figure.tile figcaption { font-size: 11.5px; color: var(--ink-2); margin-top: 6px; overflow-wrap: anywhere;
  display: -webkit-box; -webkit-line-clamp: 4; -webkit-box-orient: vertical; overflow: hidden; }
.more { align-self: center; color: var(--muted); font-size: 12px; padding: 0 8px; white-space: nowrap; }
img.thumb, .thumb.missing { width: 96px; height: 96px; object-fit: cover; border-radius: 8px; display: block;
  background: #f1f5f9; }
.thumb.missing { display: flex; align-items: center; justify-content: center; color: var(--muted); font-size: 11px;
  border: 1px dashed #cbd5e1; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 14px; }
.card { display: flex; gap: 12px; border: 1px solid var(--line); border-radius: 12px; padding: 12px; }
.card dl { margin: 0; min-width: 0; font-size: 12.5px; }
.card dt { font-size: 10.5px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted);
  font-weight: 600; margin-top: 6px; }
.card dt:first-child { margin-top: 0; }
.card dd { margin: 1px 0 0; overflow-wrap: anywhere; }
footer { color: var(--muted); font-size: 12px; margin-top: 28px; }
footer details { margin-top: 6px; }
@media (max-width: 900px) {
  .layout { grid-template-columns: 1fr; padding: 20px 14px 40px; gap: 8px; }
  nav.toc { position: static; }
  nav.toc ol { display: flex; flex-wrap: wrap; gap: 4px; }
}
@media print { nav.toc { display: none; } .layout { display: block; } section.panel { break-inside: avoid; } }
"""
