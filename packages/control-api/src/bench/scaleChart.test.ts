import { niceMax, scaleChartSvg } from './scaleChart';

describe('niceMax', () => {
  it('rounds up to 1, 2 or 5 times a power of ten', () => {
    expect([0.3, 1, 1.5, 3, 7, 20, 26, 654, 1001].map(niceMax)).toEqual([0.5, 1, 2, 5, 10, 20, 50, 1000, 2000]);
    expect(niceMax(0)).toBe(1);
    expect(niceMax(NaN)).toBe(1);
  });
});

describe('scaleChartSvg', () => {
  const panel = (points: [number, number][]) => ({
    title: 'fan-out',
    unit: 'ms',
    target: 500,
    series: [{ label: 'file store', color: '#1f77b4', points }],
  });

  it('draws one line per series through every measured point, the target, and a legend', () => {
    const svg = scaleChartSvg('Control plane at scale', [
      panel([
        [1000, 100],
        [5000, 300],
        [10000, 900],
      ]),
    ]);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.match(/<polyline/g)).toHaveLength(1);
    expect(svg.match(/<circle/g)).toHaveLength(3);
    expect(svg).toContain('target 500');
    expect(svg).toContain('file store');
    expect(svg).toContain('>10k<');
  });

  it('leaves a gap at a value not measured (NaN) instead of drawing through it', () => {
    const svg = scaleChartSvg('t', [
      panel([
        [1000, 100],
        [5000, NaN],
        [10000, 900],
      ]),
    ]);
    expect(svg).not.toContain('<polyline');
    expect(svg.match(/<circle/g)).toHaveLength(2);
    expect(svg).not.toContain('NaN');
  });

  it('escapes titles and labels', () => {
    expect(scaleChartSvg('a < b & c', [panel([[1000, 1]])])).toContain('a &lt; b &amp; c');
  });
});
