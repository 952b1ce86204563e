// The clinic site's own script: it notes which globals the page has before the widget runs (the widget is
// deferred), so a test can check that the widget adds exactly one.
window.clinicGlobals = Object.getOwnPropertyNames(window);
