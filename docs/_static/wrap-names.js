// Long dotted API names (kernel_recovery.model.config.ConvConfig) have no spaces, so a browser can only break them
// mid-word.  Give it a break opportunity (<wbr>, not a character: copying the name is unchanged) after each dot of
// a text that is one dotted name, in the page title and the sidebars.
document.addEventListener("DOMContentLoaded", () => {
  const dotted = /^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$/;
  const selector = ".bd-article h1, .bd-sidebar-primary .bd-links a, .bd-sidebar-secondary .toc-entry a";
  for (const element of document.querySelectorAll(selector)) {
    const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
    const texts = [];
    while (walker.nextNode()) texts.push(walker.currentNode);
    for (const node of texts) {
      if (!dotted.test(node.data.trim())) continue;
      const parts = node.data.split(".");
      const fragment = document.createDocumentFragment();
      parts.forEach((part, i) => {
        fragment.append(i < parts.length - 1 ? part + "." : part);
        if (i < parts.length - 1) fragment.append(document.createElement("wbr"));
      });
      node.replaceWith(fragment);
    }
  }
});
