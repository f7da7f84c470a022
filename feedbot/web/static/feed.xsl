<?xml version="1.0" encoding="utf-8"?>
<!-- Shows a feedbot Atom feed as a readable page when a browser opens the feed URL. -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom"
    exclude-result-prefixes="atom">
  <xsl:output method="html" encoding="utf-8" indent="yes" doctype-system="about:legacy-compat"/>

  <xsl:template match="/atom:feed">
    <html>
      <xsl:if test="@xml:lang">
        <xsl:attribute name="lang"><xsl:value-of select="@xml:lang"/></xsl:attribute>
      </xsl:if>
      <head>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="atom:title"/></title>
        <style>
          body { font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 0 auto; padding: 1rem; color: #222; }
          .about { background: #fff6d8; border: 1px solid #e8d48a; padding: .5rem .75rem; border-radius: 4px; font-size: .9rem; }
          .about code { word-break: break-all; }
          article { border-top: 1px solid #ddd; padding: .75rem 0; }
          h2 { font-size: 1.15rem; margin: 0 0 .25rem; }
          .meta, .tags, .related { color: #666; font-size: .85rem; margin: .25rem 0; }
          .tags span { background: #eef; border-radius: 3px; padding: 0 .3rem; margin-right: .3rem; }
        </style>
      </head>
      <body>
        <p class="about">
          This is a web feed. To follow it, copy this address into a feed reader:
          <code><xsl:value-of select="atom:link[@rel='self']/@href"/></code>
        </p>
        <header>
          <h1><xsl:value-of select="atom:title"/></h1>
          <xsl:if test="atom:subtitle">
            <p><xsl:value-of select="atom:subtitle"/></p>
          </xsl:if>
          <p class="meta">
            Updated <xsl:value-of select="substring(atom:updated, 1, 10)"/>
            <xsl:variable name="site" select="atom:link[@rel='alternate' and @type='text/html'][1]/@href"/>
            <xsl:if test="starts-with($site, 'https://') or starts-with($site, 'http://')">
              · <a href="{$site}">Web site</a>
            </xsl:if>
          </p>
        </header>
        <main>
          <xsl:apply-templates select="atom:entry"/>
        </main>
      </body>
    </html>
  </xsl:template>

  <xsl:template match="atom:entry">
    <article>
      <xsl:if test="@xml:lang">
        <xsl:attribute name="lang"><xsl:value-of select="@xml:lang"/></xsl:attribute>
      </xsl:if>
      <h2>
        <xsl:variable name="href" select="atom:link[@rel='alternate'][1]/@href"/>
        <xsl:choose>
          <xsl:when test="starts-with($href, 'https://') or starts-with($href, 'http://')">
            <a href="{$href}"><xsl:value-of select="atom:title"/></a>
          </xsl:when>
          <xsl:otherwise><xsl:value-of select="atom:title"/></xsl:otherwise>
        </xsl:choose>
      </h2>
      <p class="meta">
        <xsl:value-of select="substring(atom:published, 1, 10)"/>
        <xsl:for-each select="atom:author/atom:name">
          <xsl:text> · </xsl:text><xsl:value-of select="."/>
        </xsl:for-each>
        <xsl:if test="atom:source/atom:title">
          <xsl:text> · via </xsl:text><xsl:value-of select="atom:source/atom:title"/>
        </xsl:if>
      </p>
      <xsl:if test="atom:summary">
        <p><xsl:value-of select="atom:summary"/></p>
      </xsl:if>
      <xsl:if test="atom:category">
        <p class="tags">
          <xsl:for-each select="atom:category">
            <span><xsl:value-of select="@term"/></span>
          </xsl:for-each>
        </p>
      </xsl:if>
      <xsl:if test="atom:link[@rel='related']">
        <p class="related">Also reported by:
          <xsl:for-each select="atom:link[@rel='related'][starts-with(@href, 'https://') or starts-with(@href, 'http://')]">
            <xsl:if test="position() &gt; 1">, </xsl:if>
            <a href="{@href}">
              <xsl:choose>
                <xsl:when test="@title != ''"><xsl:value-of select="@title"/></xsl:when>
                <xsl:otherwise><xsl:value-of select="@href"/></xsl:otherwise>
              </xsl:choose>
            </a>
          </xsl:for-each>
        </p>
      </xsl:if>
    </article>
  </xsl:template>
</xsl:stylesheet>
