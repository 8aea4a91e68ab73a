// Patient view (stub until the view lands).
import { html } from './html.js';
export function PatientView() {
  return html`<main id="main" tabindex="-1"></main>`;
}
