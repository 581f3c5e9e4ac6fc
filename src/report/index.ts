/** `loramix/report`: report pieces: PNG, heatmaps, SVG charts, HTML escaping, text tables. */
export { coefficientHeatmap, type Heatmap, heatmapColor } from "./heatmap.js";
export { crc32, encodePng } from "./png.js";
