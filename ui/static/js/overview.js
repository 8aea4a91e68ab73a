// Trial overview (placeholder until the overview view lands).
import { html } from './html.js';
export function OverviewView() {
  return html`<main id="main" tabindex="-1"></main>`;
}
