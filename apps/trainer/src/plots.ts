// Loss / KL / eval curves as SVG and PNG: a vega-lite spec compiled with vega-lite, rendered to SVG by vega's
// headless View, rasterised by resvg. Written atomically.
import { renameSync, writeFileSync } from 'node:fs';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile } from 'vega-lite';

export interface Series { name: string; points: { step: number; value: number }[] }

export async function renderCurves(title: string, yTitle: string, series: Series[], basePath: string): Promise<{ svg: string; png: string }> {
  const values = series.flatMap((s) => s.points.map((p) => ({ series: s.name, step: p.step, value: p.value })));
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title, width: 560, height: 300, background: 'white',
    data: { values },
    mark: { type: 'line', point: values.length < 80 },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'step' },
      y: { field: 'value', type: 'quantitative', title: yTitle, scale: { zero: false } },
      color: { field: 'series', type: 'nominal', title: null },
    },
  };
  const view = new vega.View(vega.parse(compile(spec as never).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  const png = new Resvg(svg, { fitTo: { mode: 'width', value: 1120 }, font: { loadSystemFonts: true } }).render().asPng();
  const write = (path: string, data: string | Uint8Array): void => {
    writeFileSync(`${path}.tmp`, data);
    renameSync(`${path}.tmp`, path);
  };
  write(`${basePath}.svg`, svg);
  write(`${basePath}.png`, png);
  return { svg: `${basePath}.svg`, png: `${basePath}.png` };
}
