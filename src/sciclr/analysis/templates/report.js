// Once every image has decoded or failed, marks the body for sciclr.analysis.browser, which
// reads the marks in headless Chromium: data-images "ok"/"broken" (and the counts), the page's
// layout width, how many figures or images reach past it (data-wide-figures; each such element
// gets data-too-wide), whether the page scrolls sideways, and the number of headlines.
(function(){
  function check(){
    var body=document.body, root=document.documentElement;
    var imgs=Array.prototype.slice.call(document.images);
    var broken=imgs.filter(function(i){return !(i.complete && i.naturalWidth>0);});
    broken.forEach(function(i){i.setAttribute('data-broken','true');});
    body.setAttribute('data-image-count', String(imgs.length));
    body.setAttribute('data-broken-images', String(broken.length));
    var page=root.clientWidth, wide=0, widest=0;
    Array.prototype.forEach.call(document.querySelectorAll('figure, img'), function(el){
      var r=el.getBoundingClientRect();
      if (!r.width) { return; }  // not laid out (e.g. in a closed <details>)
      widest=Math.max(widest, Math.ceil(r.right));
      if (r.right>page+0.5 || r.left<-0.5) { wide++; el.setAttribute('data-too-wide','true'); }
    });
    var heads=Array.prototype.filter.call(document.querySelectorAll('.headline'),
      function(h){return h.textContent.trim().length>0;});
    body.setAttribute('data-page-width', String(page));
    body.setAttribute('data-widest-figure', String(widest));
    body.setAttribute('data-wide-figures', String(wide));
    body.setAttribute('data-page-overflow', root.scrollWidth>page ? 'true' : 'false');
    body.setAttribute('data-headlines', String(heads.length));
    body.setAttribute('data-images', broken.length ? 'broken' : 'ok');
  }
  if (document.readyState === 'complete') { check(); } else { window.addEventListener('load', check); }
})();
