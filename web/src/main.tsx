import { render } from 'preact';
import { App } from './App';
import './style.css';

const root = document.getElementById('app');
if (root) {
  render(<App />, root);
  // The first page is on screen and its handlers attached (render is synchronous): the e2e
  // test reports this mark's time since navigation start as "first page interactive".
  performance.mark('lifeboat:interactive');
}
