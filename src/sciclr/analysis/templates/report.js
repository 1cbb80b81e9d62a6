// Sets the body's data-images to "ok" or "broken" once every image has decoded or failed:
// sciclr.analysis.browser reads that mark in headless Chromium.
(function(){
  function check(){
    var imgs=Array.prototype.slice.call(document.images);
    var broken=imgs.filter(function(i){return !(i.complete && i.naturalWidth>0);});
    broken.forEach(function(i){i.setAttribute('data-broken','true');});
    document.body.setAttribute('data-image-count', String(imgs.length));
    document.body.setAttribute('data-broken-images', String(broken.length));
    document.body.setAttribute('data-images', broken.length ? 'broken' : 'ok');
  }
  if (document.readyState === 'complete') { check(); } else { window.addEventListener('load', check); }
})();
